//! `gray-gateway`: see `gray-gateway --help`, and the package's README.

/// A proxy allocates per request (headers, buffers, futures); mimalloc keeps that cheap.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    use std::io::IsTerminal;
    let options = match gray_gateway::cli::parse(std::env::args_os().skip(1)) {
        Ok(options) => options,
        // `--help` and `--version` print and exit 0; a bad flag prints and exits 2.
        Err(e) => e.exit(),
    };
    let on_terminal = std::io::stdout().is_terminal();
    let logs = gray_gateway::logs(std::io::stdout, on_terminal);
    if let Err(e) = tracing::subscriber::set_global_default(logs) {
        eprintln!("gray-gateway: no log: {e}");
    }
    let runtime = match options.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let result = runtime
        .map_err(Box::<dyn std::error::Error>::from)
        .and_then(|rt| rt.block_on(gray_gateway::run(options)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gray-gateway: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
