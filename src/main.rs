//! The `tessera` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tessera::config::Config;
use tracing_subscriber::EnvFilter;

/// Tessera: a WebRTC MCU for classrooms and small conferences.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Check the config file and encoder templates, then exit.
    Check(ServeArgs),
    /// Work with layout files.
    Layouts {
        #[command(subcommand)]
        action: LayoutsCommand,
    },
    /// Print a join link with a signed token (needs `auth.secret`).
    Token {
        /// Room the token opens.
        #[arg(long)]
        room: String,
        /// Role in the room: teacher, student or guest.
        #[arg(long, default_value = "student")]
        role: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// How long the token stays valid, e.g. `90m`, `2h`, `7days`.
        #[arg(long, default_value = "2h")]
        ttl: humantime::Duration,
        /// Print only the token, not the link.
        #[arg(long)]
        token_only: bool,
        /// Keep the room on the MCU while this participant is in it: a
        /// lesson of two does not go peer-to-peer.
        #[arg(long)]
        no_p2p: bool,
        #[command(flatten)]
        args: ServeArgs,
    },
    /// Work with lesson recordings (in `recording.dir` of the config).
    Recordings {
        #[command(subcommand)]
        action: RecordingsCommand,
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Subcommand, Debug)]
enum RecordingsCommand {
    /// List recordings, newest first.
    List,
    /// Join a recording's segments into one playable file (no re-encoding).
    Export {
        /// Recording id (see `tessera recordings list`).
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum LayoutsCommand {
    /// Validate every layout file in DIR (default: layouts); exits non-zero
    /// on any error, printing file:line:column: field: message.
    Check {
        /// Directory of `*.toml` layout files.
        dir: Option<PathBuf>,
    },
    /// Draw a layout to a PNG: each participant's tile in its own colour.
    Render {
        /// Layout name (a built-in or a file in --dir).
        name: String,
        /// How many participants to place.
        #[arg(long, default_value_t = 4)]
        participants: usize,
        /// Which participant (0-based, join order) is the teacher.
        #[arg(long)]
        teacher: Option<usize>,
        /// Which participant is the active speaker.
        #[arg(long)]
        speaker: Option<usize>,
        /// Which participant is a shared screen.
        #[arg(long)]
        screen: Option<usize>,
        /// Where to write the PNG.
        #[arg(long)]
        out: PathBuf,
        /// Directory of layout files.
        #[arg(long, default_value = "layouts")]
        dir: PathBuf,
        /// Canvas size.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        /// Canvas size.
        #[arg(long, default_value_t = 720)]
        height: u32,
    },
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// Config file (default: config/default.toml if present, else built-in defaults).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
}

fn init_logging() {
    let spec = tessera::logging::filter_spec(std::env::var("TESSERA_LOG").ok().as_deref());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("TESSERA_LOG: `{spec}` is not a log filter ({e}); logging at info");
        EnvFilter::new(tessera::logging::filter_spec(None))
    });
    // Colour codes only where a person reads them: a log file or a pipe
    // (journald, `| grep`) gets plain text.
    let ansi = tessera::logging::use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stdout()),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    );
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    Ok(config)
}

fn check_layouts(dir: &std::path::Path) -> anyhow::Result<()> {
    let entries = tessera::layout::library::load_dir(dir)
        .with_context(|| format!("reading layouts directory {}", dir.display()))?;
    if entries.is_empty() {
        anyhow::bail!("{}: no *.toml layout files", dir.display());
    }
    let mut bad = 0;
    for e in &entries {
        match &e.layout {
            Ok(l) => println!("ok     {} ({})", e.path.display(), l.description),
            Err(err) => {
                bad += 1;
                println!("error  {err}");
            }
        }
    }
    if bad > 0 {
        anyhow::bail!("{bad} of {} layout files have errors", entries.len());
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn main() -> ExitCode {
    // Before the runtime and GStreamer start their threads.
    tessera::media::memory::cap_arenas();
    init_logging();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line (with its causes), not a backtrace.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let config = load_config(&args)?;
            tessera::logging::bridge_gstreamer_log();
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} (server.listen); pick a free address with --listen",
                        config.server.listen
                    )
                })?;
            tessera::server::run(listener, config, shutdown_signal()).await
        }
        Command::Layouts {
            action: LayoutsCommand::Check { dir },
        } => check_layouts(&dir.unwrap_or_else(|| PathBuf::from("layouts"))),
        Command::Layouts {
            action:
                LayoutsCommand::Render {
                    name,
                    participants,
                    teacher,
                    speaker,
                    screen,
                    out,
                    dir,
                    width,
                    height,
                },
        } => {
            let library = tessera::layout::library::Library::load(&dir)
                .with_context(|| format!("reading layouts from {}", dir.display()))?;
            let layout = library.get(&name).ok_or_else(|| {
                anyhow::anyhow!(
                    "no layout named {name}; available: {}",
                    library.names().join(", ")
                )
            })?;
            let mut members = vec![tessera::layout::Member::default(); participants];
            type Flag = fn(&mut tessera::layout::Member);
            let flags: [(Option<usize>, Flag); 3] = [
                (teacher, |m| m.teacher = true),
                (speaker, |m| m.speaker = true),
                (screen, |m| m.screen = true),
            ];
            for (index, set) in flags {
                if let Some(i) = index {
                    let m = members.get_mut(i).ok_or_else(|| {
                        anyhow::anyhow!("participant {i} is beyond --participants {participants}")
                    })?;
                    set(m);
                }
            }
            gstreamer::init().context("initialising GStreamer")?;
            let canvas = tessera::layout::Size { width, height };
            let rgb = tessera::layout::render::render_rgb(&layout, canvas, &members);
            let png = tessera::layout::render::png(&rgb, canvas)?;
            std::fs::write(&out, png).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Recordings { action, args } => {
            let config = load_config(&args)?;
            let store = tessera::recording::RecordingStore::new(&config.recording.dir);
            match action {
                RecordingsCommand::List => {
                    for m in store.list() {
                        println!(
                            "{}  room {}  started {}  {}  {}",
                            m.id,
                            m.room,
                            m.started_at,
                            m.duration_ms
                                .map_or("recording".to_string(), |d| format!("{} s", d / 1000)),
                            m.export.as_deref().unwrap_or("not exported")
                        );
                    }
                    Ok(())
                }
                RecordingsCommand::Export { id } => {
                    gstreamer::init().context("initialising GStreamer")?;
                    let mut m = store.manifest(&id)?;
                    let dir = store.dir(&id)?;
                    let file = tessera::recording::export::export(&dir, &m)?;
                    m.export = Some(file.clone());
                    store.save(&m)?;
                    println!("wrote {}", dir.join(file).display());
                    Ok(())
                }
            }
        }
        Command::Token {
            room,
            role,
            name,
            ttl,
            token_only,
            no_p2p,
            args,
        } => {
            let config = load_config(&args)?;
            let token = tessera::auth::token::issue_from_config(
                &config, &room, &role, &name, *ttl, !no_p2p,
            )?;
            if token_only {
                println!("{token}");
            } else {
                println!("{}/r/{room}?token={token}", config.server.base_url());
            }
            Ok(())
        }
        Command::Check(args) => {
            let config = load_config(&args)?;
            tessera::server::init_gstreamer()?;
            tessera::server::media_settings(&config)?;
            tessera::server::default_layout(&config)?;
            println!("config, encoder templates and default layout are valid");
            Ok(())
        }
    }
}
