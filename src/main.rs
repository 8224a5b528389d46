use std::{
    io::{ErrorKind, Write},
    process::ExitCode,
};

use clap::Parser;
use myapp::{
    config::{self, Cli, Command},
    load::{self, LoadArgs},
    server::{open_files, shutdown::Shutdown},
    startup::{self, Application},
    telemetry,
};
use poem_openapi::types::ToJSON;

// jemalloc serves the small allocations of each request in a fifth fewer
// instructions than glibc's malloc, at the same peak RSS; mimalloc saved as much
// but peaked a third higher with 8,000 requests waiting (benches/README.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exit code for a bad setting, as clap uses for bad arguments.
const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => return usage_error(&config::error_line(&err)),
        Err(help_or_version) => {
            let _ = help_or_version.print();
            return ExitCode::SUCCESS;
        }
    };
    match cli.command {
        Some(Command::Openapi) => print_openapi(),
        // One thread: the scheduler, the requests and the tally wake each other
        // without crossing threads, which cut its CPU per request at 1,000/s by
        // about a third (benches/README.md, "`myapp load` against `hey`").
        Some(Command::Load(args)) => {
            let runtime = runtime(tokio::runtime::Builder::new_current_thread());
            // A spawned task: waking block_on's own future writes to the driver's eventfd.
            runtime.block_on(async { tokio::spawn(load(args)).await.expect("load does not panic") })
        }
        Some(Command::Scenario(args)) => runtime(tokio::runtime::Builder::new_multi_thread())
            .block_on(myapp::scenario::run(args)),
        None => runtime(tokio::runtime::Builder::new_multi_thread()).block_on(serve(cli.config)),
    }
}

/// The runtime `builder` makes, with its I/O and timers.
fn runtime(mut builder: tokio::runtime::Builder) -> tokio::runtime::Runtime {
    builder
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Runs the service until SIGINT or SIGTERM.
async fn serve(config: config::Config) -> ExitCode {
    if let Err(err) = config.validate() {
        return usage_error(&format!("error: {err}"));
    }
    let _log_writer = match telemetry::init(config.log_format) {
        Ok(guard) => guard,
        Err(err) => return usage_error(&format!("error: {err}")),
    };

    // Before the listeners open, so that every connection may use the raised limit.
    let open_files = open_files::raise_to_hard_limit()
        .inspect_err(|err| tracing::warn!(error = %err, "cannot raise the open-file limit"))
        .ok();

    let shutdown = Shutdown::default();
    let application = match Application::build(&config, shutdown.clone()).await {
        Ok(application) => application,
        Err(err) => return usage_error(&format!("error: {err}")),
    };
    if let Err(err) = shutdown.on_signals() {
        return usage_error(&format!("error: cannot listen for signals: {err}"));
    }
    tracing::info!(
        address = %application.address(),
        metrics_address = %application.metrics_address(),
        metrics_token = if application.has_metrics_token() { "set" } else { "none" },
        metrics_tls = application.has_metrics_tls(),
        basic_auth = if application.has_basic_auth() { "set" } else { "none" },
        // Who may PUT /admin/workload.
        workload_changes = match (application.has_metrics_token(), application.has_basic_auth()) {
            (true, _) => "with the token",
            (_, true) => "with basic auth",
            _ => "from loopback only",
        },
        workload = %application.workload().settings().to_json_string(),
        delay_cap_ms = config.delay_cap_ms,
        workload_file = config.workload_file.as_ref().map(|path| tracing::field::display(path.display())),
        buckets = %config.buckets,
        shutdown_timeout_secs = config.shutdown_timeout().as_secs(),
        shutdown_delay_secs = config.shutdown_delay_secs,
        header_timeout_secs = config.header_timeout_secs,
        body_timeout_secs = config.body_timeout_secs,
        max_in_flight = config.max_in_flight,
        open_files_limit = open_files.map(|limit| limit.soft),
        "listening"
    );
    let report = application.run().await;
    if report.cut_off > 0 {
        tracing::warn!(
            cut_off = report.cut_off,
            "stopped before every in-flight request finished"
        );
        return ExitCode::FAILURE;
    }
    tracing::info!("stopped after every in-flight request finished");
    ExitCode::SUCCESS
}

/// Writes the spec to stdout. A reader that stops early (`myapp openapi | head -1`)
/// closes the pipe: that ends the output normally, where `println!` would panic.
fn print_openapi() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", startup::openapi_json()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the OpenAPI spec: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `myapp load` until its duration ends or SIGINT/SIGTERM, then prints the
/// summary: one JSON object with --json, else a table.
async fn load(args: LoadArgs) -> ExitCode {
    let stop = match load::stop_signal() {
        Ok(stop) => stop,
        Err(err) => return usage_error(&format!("error: cannot listen for signals: {err}")),
    };
    let summary = match load::run(&args, stop).await {
        Ok(summary) => summary,
        Err(err) => return usage_error(&format!("error: {err}")),
    };
    let text = if args.json {
        summary.to_json()
    } else {
        summary.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the summary: {err}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(line: &str) -> ExitCode {
    eprintln!("{line}");
    ExitCode::from(USAGE_ERROR)
}
