//! `kmatrix` binary: parse the command line, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = kmatrix::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmatrix: cannot start the async runtime: {e}");
            std::process::exit(kmatrix::cli::exit::INFRA);
        }
    };
    let code = match rt.block_on(kmatrix::cli::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmatrix: error: {}", kmatrix::engine::chain(&e));
            e.exit_code()
        }
    };
    // Last resort: nothing we started outlives us.
    kmatrix::proc::kill_all();
    std::process::exit(code);
}
