//! `launcher`: see `launcher --help` and the library docs.

fn main() -> std::process::ExitCode {
    launcher::main_entry()
}
