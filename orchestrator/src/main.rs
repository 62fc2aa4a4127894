//! `kmatrix` binary: parse the command line, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    // The guard (see `proc`): a copy of this program that outlives us to kill what we
    // started, even if we are SIGKILLed.
    if std::env::args().nth(1).as_deref() == Some("__guard") {
        std::process::exit(kmatrix::host::proc::guard_main());
    }
    let cli = kmatrix::cli::Cli::parse();
    if let Err(e) = kmatrix::host::proc::start_guard() {
        eprintln!("kmatrix: warning: cannot start the guard process ({e}); a SIGKILLed kmatrix may leave compilers behind");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kmatrix: cannot start the async runtime: {e}");
            std::process::exit(kmatrix::record::verdict::exit::INFRA);
        }
    };
    let code = match rt.block_on(kmatrix::cli::main(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote names and text from files that may come from anywhere.
            eprintln!(
                "kmatrix: error: {}",
                kmatrix::record::fmt::visible(&kmatrix::record::fmt::chain(&e))
            );
            e.exit_code()
        }
    };
    // Last resort: nothing we started outlives us.
    kmatrix::host::proc::kill_all();
    std::process::exit(code);
}
