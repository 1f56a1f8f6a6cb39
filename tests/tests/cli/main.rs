//! End-to-end tests: the `dreamyard` command line driven as a user would, one module per area.
//! One test binary (linking the app once); each test runs the CLI in a child process of this
//! binary (see [`common`]).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod alloc;
mod app;
mod common;
mod datasets;
mod eval;
mod fuzz;
mod model;
mod reliability;
mod scenes;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

#[test]
#[ignore = "run as a child process by the tests"]
fn cli_child() {
    common::child_main();
}
