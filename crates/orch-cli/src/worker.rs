//! `orch worker`: serves the built-in task types (`command`, `sleep`, `echo`, or those
//! `--types` names) to
//! coordinators elsewhere (`orch run --nats`, or any program with orch-nats's remote
//! handler) through NATS JetStream, until Ctrl-C or SIGTERM. Also the NATS settings that
//! `orch run --nats` shares.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use orch::engine::CancellationToken;
use orch_nats::{NatsConfig, Worker};

use crate::builtin;
use crate::inputs::InputsRoot;
use crate::spec;

/// What `orch worker` was asked to do.
#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    /// The NATS server (comma-separated URLs; default ORCH_NATS_URL, else
    /// nats://127.0.0.1:4222). Credentials and TLS come only from the ORCH_NATS_*
    /// variables.
    #[arg(long, value_name = "URL")]
    nats: Option<String>,
    /// The task types to serve, comma-separated (default: all of command, sleep and
    /// echo). A worker whose NATS user may take only some types' tasks serves those.
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        value_parser = clap::builder::PossibleValuesParser::new(spec::TYPES)
    )]
    types: Vec<String>,
    /// The most tasks running at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// The worker's name in results and logs (default: host name and process id).
    #[arg(long)]
    name: Option<String>,
    /// The directory relative `cwd`s start from (default: the current directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// After Ctrl-C, how long running tasks may finish before they are stopped and
    /// handed back to the queue.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = orch::core::parse_duration)]
    shutdown_grace: Duration,
}

/// The NATS settings: the `ORCH_NATS_*` environment variables (credentials and TLS come
/// only from there), with the servers of `--nats` when given. A URL on the command line
/// that carries a password or token is refused: command lines are visible to every user
/// of the machine (`ps`), and end up in shell histories and logs.
pub(crate) fn nats_config(url: Option<&str>, name: Option<&str>) -> Result<NatsConfig, String> {
    let mut config = NatsConfig::from_env().map_err(|e| e.to_string())?;
    if let Some(url) = url {
        let servers: Vec<String> = url
            .split(',')
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .collect();
        if servers.is_empty() {
            return Err("--nats names no server".to_owned());
        }
        if servers.iter().any(|u| NatsConfig::url_has_credentials(u)) {
            return Err(format!(
                "--nats: a server URL with credentials in it (user:password@) would show them to \
                 anyone who can list processes; put the user in {} and the password in {} \
                 (or use {}, {} or {}) instead",
                orch_nats::env::USER,
                orch_nats::env::PASSWORD,
                orch_nats::env::TOKEN,
                orch_nats::env::NKEY_SEED,
                orch_nats::env::CREDS,
            ));
        }
        config.servers = servers;
    }
    if config.name.is_none() {
        config.name = name.map(str::to_owned);
    }
    Ok(config)
}

/// Serves tasks until Ctrl-C or SIGTERM; exit 0 after a clean stop, 1 when its connection
/// was closed for good (it reconnects otherwise), 2 when the worker cannot start (no
/// server, refused credentials, a `--dir` it cannot work in, no private temporary
/// directory), and 128 + the signal's number when a signal comes while it is still
/// connecting.
pub(crate) fn serve(args: WorkerArgs) -> ExitCode {
    let config = match nats_config(args.nats.as_deref(), args.name.as_deref()) {
        Ok(config) => config,
        Err(e) => return setup_error(e),
    };
    let base_dir = match base_dir(args.dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => return setup_error(e),
    };
    let runtime = match crate::runtime::for_commands(args.concurrency as usize) {
        Ok(runtime) => runtime,
        Err(e) => return setup_error(format!("cannot start the async runtime: {e}")),
    };
    let code = runtime.block_on(run_worker(&args, config, &base_dir));
    crate::runtime::shut_down(runtime);
    code
}

/// The directory relative `cwd`s start from: `--dir`, else the current directory, made
/// absolute. It must be a directory this user may enter: otherwise every command task
/// would fail on its working directory, with an error that does not mention `--dir`.
fn base_dir(dir: Option<&Path>) -> Result<PathBuf, String> {
    let given = dir.unwrap_or(Path::new("."));
    let refused = |problem: &dyn std::fmt::Display| format!("--dir {}: {problem}", given.display());
    let dir = std::fs::canonicalize(given).map_err(|e| refused(&e))?;
    let may_enter = || nix::unistd::access(&dir, nix::unistd::AccessFlags::X_OK).is_ok();
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() && may_enter() => Ok(dir),
        Ok(meta) if meta.is_dir() => Err(refused(&"cannot be entered (no permission)")),
        Ok(_) => Err(refused(&"is not a directory")),
        Err(e) => Err(refused(&e)),
    }
}

/// The types `--types` names, each once, in the order of [`spec::TYPES`]; all of them
/// when it names none.
fn served_types(asked: &[String]) -> Vec<&'static str> {
    spec::TYPES
        .into_iter()
        .filter(|t| asked.is_empty() || asked.iter().any(|a| a == t))
        .collect()
}

fn setup_error(message: String) -> ExitCode {
    errln!("orch worker: {message}");
    ExitCode::from(2)
}

async fn run_worker(args: &WorkerArgs, config: NatsConfig, base_dir: &Path) -> ExitCode {
    // Watched before the temporary directory is made and before connecting, so that no
    // signal finds the default action (exit), which would leave the directory behind.
    let Ok(mut signals) = crate::signals::watch_stopping() else {
        return setup_error("cannot watch for Ctrl-C, SIGTERM, SIGHUP and SIGQUIT".into());
    };
    // Removed by hand when a third signal ends the worker without running destructors.
    let made = InputsRoot::create().and_then(|inputs| {
        let dir = inputs.path()?.to_owned();
        Ok((inputs, dir))
    });
    let (inputs, inputs_dir) = match made {
        Ok(made) => made,
        Err(e) => return setup_error(e.to_string()),
    };
    let handler = builtin::handler(base_dir.to_owned(), inputs);
    let mut builder = Worker::builder()
        .concurrency(args.concurrency as usize)
        .shutdown_grace(args.shutdown_grace);
    if let Some(name) = &args.name {
        builder = builder.name(name.clone());
    }
    let types = served_types(&args.types);
    for &task_type in &types {
        builder = builder.handler(task_type, handler.clone());
    }
    let worker =
        match crate::signals::unless_signalled(&mut signals, builder.connect(&config)).await {
            Ok(Ok(worker)) => worker,
            Ok(Err(e)) => return setup_error(format!("cannot serve tasks: {e}")),
            // Stopped before it took any task.
            Err(number) => return ExitCode::from(128 + number),
        };
    // Written with errors ignored: whoever started the worker may have closed its output.
    // The name as given may hold control characters and line breaks: written escaped.
    let _ = writeln!(
        std::io::stdout(),
        "worker {} serving {} (up to {} at once); Ctrl-C stops it",
        crate::display::one_line(worker.name()),
        types.join(", "),
        args.concurrency
    );
    let (stop, stop_now) = (CancellationToken::new(), CancellationToken::new());
    let (on_signal, now_on_signal) = (stop.clone(), stop_now.clone());
    let grace = args.shutdown_grace;
    // Watched apart, and each step taken before it is logged: a signal still works when
    // the worker's output is stuck.
    let watching = async move {
        crate::signals::next(&mut signals).await;
        on_signal.cancel();
        crate::signals::log_apart(move || {
            tracing::warn!(
                "stopping: no new tasks; running ones have {grace:?} to finish (again to stop them now)"
            );
        });
        crate::signals::next_again(&mut signals).await;
        now_on_signal.cancel();
        crate::signals::log_apart(|| {
            tracing::warn!(
                "stopping now: running tasks are cancelled and handed back (again to exit at once)"
            );
        });
        // Whatever the worker still waits for (a server that is gone), a third signal
        // ends it, and the commands still running with it: its tasks go to other workers
        // after the server's ack wait.
        let number = crate::signals::next_again(&mut signals).await;
        crate::process::kill_running_commands();
        // The dependency results handed to commands go too, as when attempts end.
        let _ = std::fs::remove_dir_all(&inputs_dir);
        std::process::exit(128 + i32::from(number));
    };
    let _watching_signals = match crate::signals::watch_apart(watching) {
        Ok(watching) => watching,
        Err(e) => return setup_error(format!("cannot watch for signals: {e}")),
    };
    worker.run_until(stop.clone(), stop_now).await;
    // Not asked to stop: its connection was closed for good.
    if !stop.is_cancelled() {
        errln!(
            "orch worker: the connection to NATS was closed for good; running tasks were handed back"
        );
        return ExitCode::FAILURE;
    }
    let _ = writeln!(std::io::stdout(), "worker stopped");
    ExitCode::SUCCESS
}
