//! `linpack N [--repeat K] [--seed S] [--threads T] [--output human|json]`: see `linpack --help`.

fn main() -> std::process::ExitCode {
    linpack::cli::main()
}
