//! Dreamyard: the binary's library. `cli` parses the command line and runs the headless
//! subcommands; each subcommand lives in its own module. `session` is the app's core (no Bevy);
//! `gui` (cargo feature `gui`, on by default) is the Bevy + egui desktop app over it.

pub mod bridge;
pub mod cli;
pub mod commands;
pub mod controls;
mod dataset_cmd;
pub mod device;
pub mod eval;
mod eval_cmd;
#[cfg(feature = "gui")]
pub mod gui;
mod image_io;
pub mod keyboard_mouse;
pub mod launch;
pub mod live_data;
pub mod metrics;
mod model_cmd;
pub mod model_source;
pub mod objects;
mod parse;
pub mod perturb;
mod predict_cmd;
mod scene_cmd;
pub mod session;
pub mod soak;
pub mod spawn;
pub mod text;
mod train_cmd;

/// An error and its causes on one line, `outer: cause: root`, leaving out a cause whose text
/// the line already holds (many errors print their source themselves, and `{:#}` would repeat
/// it).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::error_chain;

    #[test]
    fn error_chain_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A library error that prints its source, wrapped with context by the binary.
        let err = Err::<(), _>(dreamyard_model::ModelError::Io {
            path: "m/config.json".into(),
            source: io,
        })
        .context("--init m: cannot read the model")
        .unwrap_err();
        assert_eq!(
            error_chain(err.as_ref()),
            "--init m: cannot read the model: m/config.json: no such file"
        );
        // Causes that do not repeat each other are all kept.
        let err = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(error_chain(err.as_ref()), "outer: middle: root");
    }
}
