use std::process::ExitCode;

fn main() -> ExitCode {
    dreamyard::cli::main()
}
