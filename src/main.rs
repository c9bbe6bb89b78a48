//! The command line: parse arguments, run the pipeline, report one line.

mod cli;

use clap::{Parser, ValueEnum};
use oci2wsl::cache::{self, CacheSettings, PullPolicy};
use oci2wsl::error::{ErrorKind, ResultExt};
use oci2wsl::events::{Event, Observer};
use oci2wsl::image::platform::Platform;
use oci2wsl::image::PlatformChoice;
use oci2wsl::output::{self, Destination, OutputCompression};
use oci2wsl::pipeline::{self, Options};
use oci2wsl::source::remote::authn::Credentials;
use oci2wsl::source::remote::RegistryOptions;
use oci2wsl::terminal::printable;
use oci2wsl::wsl::{DistributionName, ImportOptions, WslOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// `--progress`, with buildx's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProgressArg {
    /// Bars when stderr is a terminal, else plain.
    Auto,
    /// No bars: warnings and the summary as lines.
    Plain,
    /// No progress: warnings and the summary only.
    None,
    /// One JSON object per line on stderr for every event (docs/events.md).
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PullArg {
    Always,
    Missing,
    Never,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ListFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

/// Turn an OCI/Docker image into a WSL root file system tarball.
///
/// IMAGE is one of:
///   [docker://]NAME[:TAG|@DIGEST]   an image in a registry (postgres:16, ghcr.io/o/app@sha256:…)
///   oci:PATH[:TAG|@DIGEST]          OCI image layout directory
///   oci-archive:FILE[:TAG]          OCI layout in a tar (buildx -o type=oci); - is stdin
///   docker-archive:FILE[:REPO:TAG]  `docker save` / `podman save` tarball; - is stdin
///   docker-daemon:NAME[:TAG]        an image in the Docker engine (DOCKER_HOST, docker
///                                   context, or the default socket / named pipe)
#[derive(Parser, Debug)]
#[command(name = "oci2wsl", version, verbatim_doc_comment)]
struct Cli {
    /// The image to flatten (see above for the forms).
    #[arg(required_unless_present_any = ["cache_list", "cache_prune"],
          conflicts_with_all = ["cache_list", "cache_prune"])]
    image: Option<String>,

    /// Write to FILE instead of standard output; compression follows the extension
    /// (.tar, .tar.gz/.tgz, .tar.zst, and .wsl: a gzip tar with /etc/wsl-distribution.conf
    /// for `wsl --install --from-file`). `-` means standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,

    /// Compression of the output, overriding the extension.
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,

    /// Compression level (gzip 0-12, default 2; zstd 1-22, default 2).
    #[arg(long)]
    level: Option<i32>,

    /// Platform to pick from a multi-platform image, as os/arch[/variant]
    /// [default: linux/<this machine's architecture>].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<String>,

    /// Replace the output file if it exists.
    #[arg(short, long)]
    force: bool,

    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,

    /// Show the image instead of converting it: its index and platforms, layers and sizes,
    /// config, and what the WSL stage would write. Fetches the manifest and config only.
    #[arg(long, conflicts_with_all = ["output", "import", "force"])]
    inspect: bool,

    /// With --inspect: print JSON on standard output instead of text.
    #[arg(long, requires = "inspect")]
    json: bool,

    /// How to show progress: auto (bars on a terminal), plain, none, or json (one JSON
    /// object per line on stderr for every event, the summary and any error; for front
    /// ends, see docs/events.md).
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    progress: ProgressArg,

    /// Threads for reading layers and compressing [default: number of CPUs].
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,

    /// Refuse a layer whose uncompressed size exceeds RATIO times its compressed size (and
    /// 1 GiB): the guard against decompression bombs.
    #[arg(long, value_name = "RATIO", default_value_t = oci2wsl::limits::DEFAULT_MAX_EXPANSION,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_expansion: u64,

    /// Registry credentials, USER:PASSWORD, or USER and the password is asked for (or read
    /// with --password-stdin). Else --authfile, $REGISTRY_AUTH_FILE, the containers
    /// auth.json, Docker's config.json and credential helpers.
    #[arg(long, value_name = "USER[:PASSWORD]")]
    creds: Option<String>,

    /// Use no credentials at all: no auth file, no Docker config, no credential helper.
    #[arg(long, conflicts_with_all = ["creds", "authfile", "password_stdin"])]
    no_creds: bool,

    /// Read the registry password from standard input (with --creds USER). Without it,
    /// --creds USER alone asks for the password on the terminal.
    #[arg(long, requires = "creds")]
    password_stdin: bool,

    /// Registry credentials file (containers auth.json / Docker config.json format).
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,

    /// Verify registry TLS certificates (--tls-verify=false to skip; insecure).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    tls_verify: bool,

    /// Trust this CA certificate (PEM) for registries, besides the system's. Repeatable.
    #[arg(long, value_name = "FILE")]
    ca_file: Vec<PathBuf>,

    /// Trust the CA certificates (*.crt) in DIR, as docker's certs.d does.
    #[arg(long, value_name = "DIR")]
    cert_dir: Option<PathBuf>,

    /// Allow plain HTTP (and unverified TLS) for this registry host. Repeatable. Loopback
    /// registries may always fall back to HTTP.
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,

    /// Retries of a failed registry request (connection errors, 429, 5xx) before giving up.
    #[arg(long, value_name = "N", default_value_t = oci2wsl::source::remote::client::DEFAULT_RETRIES,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    retry_times: u32,

    /// Log every registry request (method, URL without its query, status, time) and every
    /// retry to standard error. Credentials, tokens and signed query strings are never logged.
    #[arg(short, long, visible_alias = "debug")]
    verbose: bool,

    /// The plain flattened file system: no /etc/wsl.conf user, no environment script, no
    /// image metadata.
    #[arg(long, help_heading = "WSL")]
    no_wsl_config: bool,

    /// When to ask the registry: `missing` uses cached blobs and re-resolves a tag with one
    /// HEAD request, `always` downloads everything again (and refreshes the cache), `never`
    /// works offline from the cache.
    #[arg(
        long,
        value_enum,
        value_name = "POLICY",
        default_value = "missing",
        help_heading = "Cache"
    )]
    pull: PullArg,

    /// The layer cache (an OCI image layout) [default: %LOCALAPPDATA%\oci2wsl\cache on
    /// Windows, $XDG_CACHE_HOME/oci2wsl or ~/.cache/oci2wsl elsewhere].
    #[arg(
        long,
        value_name = "DIR",
        env = "OCI2WSL_CACHE_DIR",
        help_heading = "Cache"
    )]
    cache_dir: Option<PathBuf>,

    /// Keep no layer cache: download into temporary files deleted at exit.
    #[arg(long, env = "OCI2WSL_NO_CACHE", help_heading = "Cache",
          value_parser = clap::builder::FalseyValueParser::new())]
    no_cache: bool,

    /// The cache's size cap: after a pull, least recently used images are evicted down to
    /// it (K, M, G, T suffixes).
    #[arg(long, value_name = "SIZE", default_value = "10G", help_heading = "Cache",
          value_parser = oci2wsl::cache::parse_size)]
    cache_max_size: u64,

    /// List the cached images (text, or json) and exit.
    #[arg(long, value_enum, value_name = "FORMAT", num_args = 0..=1,
          default_missing_value = "text", help_heading = "Cache")]
    cache_list: Option<ListFormat>,

    /// Evict least recently used images until the cache holds at most SIZE [default: 0,
    /// everything], and exit. With --cache-list the listing follows.
    #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "0",
          help_heading = "Cache", value_parser = oci2wsl::cache::parse_size)]
    cache_prune: Option<u64>,

    /// The distribution's default user (a name or uid in the image's /etc/passwd) instead
    /// of the image's User.
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "WSL",
        conflicts_with = "no_wsl_config"
    )]
    user: Option<String>,

    /// Start the image's Entrypoint and Cmd when the distribution boots ([boot] command).
    #[arg(long, help_heading = "WSL", conflicts_with = "no_wsl_config")]
    boot: bool,

    /// For -o NAME.wsl: the name `wsl --install --from-file` offers ([oobe] defaultName in
    /// /etc/wsl-distribution.conf) [default: the image's own, else the file's name].
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "WSL",
        conflicts_with = "no_wsl_config"
    )]
    distribution_name: Option<String>,

    /// Import the result as WSL distribution NAME (wsl --import). Without -o the tar is
    /// streamed into WSL and no tarball is written to disk.
    #[arg(long, value_name = "NAME", help_heading = "WSL")]
    import: Option<String>,

    /// Where the imported distribution's disk lives [default: %LOCALAPPDATA%\Wsl\NAME].
    #[arg(long, value_name = "DIR", help_heading = "WSL", requires = "import")]
    install_dir: Option<PathBuf>,

    /// WSL version of the imported distribution [default: WSL's default].
    #[arg(long, value_name = "1|2", help_heading = "WSL", requires = "import",
          value_parser = clap::value_parser!(u8).range(1..=2))]
    wsl_version: Option<u8>,

    /// The wsl.exe to run for --import.
    #[arg(
        long,
        value_name = "PATH",
        help_heading = "WSL",
        env = "OCI2WSL_WSL_EXE",
        default_value = "wsl.exe"
    )]
    wsl_exe: PathBuf,
}

/// Compressed-tar extensions this program does not write: an uncompressed tar under such a
/// name would fool every reader that goes by the name.
const UNWRITTEN_COMPRESSIONS: [(&str, &str); 10] = [
    (".xz", "xz"),
    (".txz", "xz"),
    (".lzma", "lzma"),
    (".bz2", "bzip2"),
    (".tbz", "bzip2"),
    (".tbz2", "bzip2"),
    (".lz4", "lz4"),
    (".lz", "lzip"),
    (".z", "compress"),
    (".7z", "7-Zip"),
];

/// The `-o` mistakes that are plain from the command line, refused before anything runs.
fn check_output_argument(cli: &Cli) -> anyhow::Result<()> {
    let Some(output) = cli.output.as_deref() else {
        return Ok(());
    };
    if output.is_empty() {
        anyhow::bail!("-o needs a file name (or - for standard output)");
    }
    if output == "-" {
        if let Some(name) = &cli.import {
            anyhow::bail!("--import {name} -o -: the tar goes into wsl --import, so nothing would reach standard output; leave out -o to stream the import, or name a file to keep");
        }
        return Ok(());
    }
    if std::path::Path::new(output).is_dir() {
        anyhow::bail!(
            "-o {output} is a directory; name a file in it, such as {}",
            std::path::Path::new(output).join("rootfs.tar.gz").display()
        );
    }
    if cli.compression.is_none() {
        let lower = output.to_ascii_lowercase();
        if let Some((ext, name)) = UNWRITTEN_COMPRESSIONS
            .iter()
            .find(|(ext, _)| lower.ends_with(ext))
        {
            anyhow::bail!("-o {output}: oci2wsl does not write {name} ({ext}); it writes .tar, .tar.gz, .tar.zst and .wsl (or pipe it: -o - | {name} > {output})");
        }
    }
    Ok(())
}

/// [`options`] for a run or an inspection: what it refuses is the command line (a usage
/// error, exit 2), unless a deeper tag says otherwise.
fn command_line_options(cli: &Cli) -> Result<Options, oci2wsl::error::Error> {
    options(cli)
        .or_else(|e| {
            if oci2wsl::error::classify(&e) == ErrorKind::Other {
                Err(e).kind(ErrorKind::Usage)
            } else {
                Err(e)
            }
        })
        .map_err(oci2wsl::error::Error::from)
}

fn options(cli: &Cli) -> anyhow::Result<Options> {
    // What IMAGE names, and every mistake in it, is known before a password is asked for.
    oci2wsl::source::parse_reference(cli.image.as_deref().unwrap_or_default())?;
    check_output_argument(cli)?;
    let destination = match cli.output.as_deref() {
        None | Some("-") => Destination::Stdout,
        Some(path) => Destination::File {
            path: PathBuf::from(path),
            force: cli.force,
        },
    };
    let compression = match (cli.compression, cli.output.as_deref()) {
        (Some(CompressionArg::None), _) => OutputCompression::None,
        (Some(CompressionArg::Gzip), _) => OutputCompression::Gzip,
        (Some(CompressionArg::Zstd), _) => OutputCompression::Zstd,
        (None, Some(path)) if path != "-" => OutputCompression::from_file_name(path),
        (None, _) => OutputCompression::None,
    };
    let level = match cli.level {
        Some(level) => {
            if compression == OutputCompression::None {
                anyhow::bail!("--level {level}: the output is an uncompressed tar; name a compressed file (-o NAME.tar.gz, -o NAME.tar.zst) or add --compression gzip|zstd");
            }
            compression.check_level(level)?;
            level
        }
        None => compression.default_level(),
    };
    let platform = match &cli.platform {
        Some(p) => PlatformChoice {
            platform: Platform::parse(p).map_err(anyhow::Error::msg)?,
            explicit: true,
        },
        // WSL runs the machine's own architecture, also when this program runs emulated.
        None => {
            let mut choice = PlatformChoice::default();
            if let Some(arch) = oci2wsl::wsl::host::native_architecture() {
                choice.platform.architecture = arch.to_string();
            }
            choice
        }
    };
    let wsl_file_name = cli.output.as_deref().and_then(distribution_name);
    if cli.no_wsl_config && wsl_file_name.is_some() {
        anyhow::bail!("--no-wsl-config: a .wsl file needs /etc/wsl-distribution.conf; write a .tar.gz for the plain file system");
    }
    if let (Some(name), Some(output)) = (&cli.import, cli.output.as_deref()) {
        // wsl --import reads the file back by name once it is complete: a device or FIFO
        // written through would hand it nothing (or another program's stream).
        let path = std::path::Path::new(output);
        if output != "-"
            && oci2wsl::output::target::inspect(path, true).ok()
                == Some(oci2wsl::output::target::Target::WriteThrough)
        {
            anyhow::bail!(
                "--import {name} -o {output}: wsl --import needs a regular file to read back; \
                 name a file, or leave out -o to stream the import"
            );
        }
    }
    if let Some(name) = &cli.distribution_name {
        if wsl_file_name.is_none() {
            anyhow::bail!("--distribution-name {name}: only a .wsl file (-o NAME.wsl) carries a distribution name");
        }
        oci2wsl::wsl::import::check_name(name)
            .map_err(|e| anyhow::anyhow!("--distribution-name: {e}"))?;
    }
    let jobs = cli.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    Ok(Options {
        image: cli.image.clone().unwrap_or_default(),
        destination,
        compression,
        level,
        platform,
        jobs: jobs.max(1),
        max_expansion: cli.max_expansion,
        registry: RegistryOptions {
            no_creds: cli.no_creds,
            retry_times: cli.retry_times,
            log_requests: cli.verbose,
            creds: if cli.password_stdin && cli.image.as_deref().is_some_and(|i| i.ends_with(":-"))
            {
                anyhow::bail!(
                    "--password-stdin and an image read from standard input cannot share it"
                )
            } else {
                Credentials::from_command_line(cli.creds.as_deref(), cli.password_stdin)?
            },
            authfile: cli.authfile.clone(),
            tls_verify: cli.tls_verify,
            ca_files: cli.ca_file.clone(),
            cert_dir: cli.cert_dir.clone(),
            insecure_registries: cli.insecure_registry.clone(),
            cache: cache_settings(cli)?,
            ..Default::default()
        },
        cancel: Default::default(),
        wsl: (!cli.no_wsl_config).then(|| WslOptions {
            user: cli.user.clone(),
            boot: cli.boot,
            distribution_name: match (&cli.distribution_name, wsl_file_name) {
                (Some(chosen), _) => Some(DistributionName::Chosen(chosen.clone())),
                (None, Some(file)) => Some(DistributionName::FromFileName(file)),
                (None, None) => None,
            },
        }),
        import: cli.import.as_ref().map(|name| ImportOptions {
            name: name.clone(),
            install_dir: cli.install_dir.clone(),
            version: cli.wsl_version,
            wsl_exe: cli.wsl_exe.clone(),
        }),
    })
}

/// Where the cache is. No place for it (no HOME) is not an error here: only a registry
/// pull uses the cache, and it warns and goes without; `oci:` and the archives never ask.
fn cache_settings(cli: &Cli) -> anyhow::Result<CacheSettings> {
    let dir = if cli.no_cache {
        None
    } else {
        cli.cache_dir.clone().or_else(cache::default_dir)
    };
    Ok(CacheSettings {
        no_place: !cli.no_cache && dir.is_none(),
        dir,
        max_size: cli.cache_max_size,
        pull: match cli.pull {
            PullArg::Always => PullPolicy::Always,
            PullArg::Missing => PullPolicy::Missing,
            PullArg::Never => PullPolicy::Never,
        },
    })
}

/// `--cache-list` and `--cache-prune`: the cache alone, no image.
fn cache_command(cli: &Cli) -> anyhow::Result<()> {
    let settings = cache_settings(cli)?;
    let Some(dir) = settings.dir else {
        if settings.no_place {
            anyhow::bail!(
                "no place for the layer cache: set --cache-dir or OCI2WSL_CACHE_DIR (or HOME)"
            );
        }
        anyhow::bail!("--no-cache: there is no cache to list or prune");
    };
    let cache = cache::Cache::open(&dir, settings.max_size)?;
    let removed = match cli.cache_prune {
        Some(keep) => Some(cache.prune(keep)?),
        None => None,
    };
    let listing = cache.list()?;
    match (cli.cache_list, &removed) {
        (Some(ListFormat::Json), _) => {
            println!("{}", listing.json(removed.as_deref()));
        }
        (list, removed) => {
            if let Some(removed) = removed {
                for r in removed.iter() {
                    println!(
                        "removed {} {} ({} freed)",
                        printable(&r.name),
                        r.platform,
                        pipeline::human(r.freed)
                    );
                }
                if list.is_none() {
                    println!(
                        "cache {}: {} images, {}",
                        dir.display(),
                        listing.images.len(),
                        pipeline::human(listing.size)
                    );
                }
            }
            if list.is_some() {
                print!("{}", listing.human());
            }
        }
    }
    Ok(())
}

/// For `-o NAME.wsl`: the default distribution name, from the file name, in the characters
/// WSL allows.
fn distribution_name(output: &str) -> Option<String> {
    let file = std::path::Path::new(output).file_name()?.to_string_lossy();
    let stem = file.strip_suffix(".wsl").or_else(|| {
        file.to_ascii_lowercase()
            .ends_with(".wsl")
            .then(|| &file[..file.len() - 4])
    })?;
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    Some(if name.trim_matches('-').is_empty() {
        "oci2wsl".to_string()
    } else {
        name
    })
}

/// What the display does not draw: a line per retry (on a terminal, or with `-v`) and, with
/// `-v`, a line per request. Everything else goes on to the display.
struct RunLog {
    display: Arc<cli::progress::Display>,
    retries: bool,
    requests: bool,
}

impl Observer for RunLog {
    fn event(&self, event: &Event) {
        match event {
            Event::Retry {
                what,
                attempt,
                reason,
                wait,
            } => {
                if self.retries {
                    self.display
                        .println(&cli::progress::retry_line(what, *attempt, reason, *wait));
                }
            }
            Event::Request {
                method,
                url,
                status,
                elapsed,
            } => {
                if self.requests {
                    let status = status.map_or("no response".to_string(), |s| s.to_string());
                    self.display.println(&format!(
                        "oci2wsl: debug: {method} {} -> {status} ({} ms)",
                        printable(url),
                        elapsed.as_millis()
                    ));
                }
            }
            other => self.display.event(other),
        }
    }
}

/// `--inspect`: resolve the image and print what converting it would do.
fn inspect(
    cli: &Cli,
    json: Option<&Arc<cli::json::JsonEvents>>,
    display: Arc<cli::progress::Display>,
) -> ExitCode {
    let observer: Arc<dyn Observer> = match (json, cli.json) {
        (Some(json), _) => json.clone(),
        // The JSON document carries the warnings itself.
        (None, true) => Arc::new(oci2wsl::events::Silent),
        (None, false) => display,
    };
    let result = command_line_options(cli).and_then(|opts| {
        oci2wsl::inspect::inspect(
            &oci2wsl::inspect::InspectOptions {
                image: opts.image,
                platform: opts.platform,
                registry: opts.registry,
                wsl: opts.wsl,
            },
            observer,
        )
    });
    match result {
        Ok(inspection) => {
            let text = if cli.json {
                let mut value = serde_json::to_value(&inspection).expect("serialisable");
                value["v"] = 1.into();
                cli::json::escape_controls(format!("{value:#}\n"))
            } else {
                cli::inspect::human(&inspection)
            };
            let mut stdout = std::io::stdout().lock();
            if std::io::Write::write_all(&mut stdout, text.as_bytes()).is_err() {
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            match json {
                Some(json) => json.error(&e),
                None => eprintln!("oci2wsl: error: {}", printable(&e.to_string())),
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}

/// Exit status: 2 for a wrong command line (as clap's own errors), 1 for any other failure.
fn exit_code(kind: ErrorKind) -> u8 {
    if kind == ErrorKind::Usage {
        2
    } else {
        1
    }
}

/// True when the raw arguments ask for JSON progress: a command line clap refuses still
/// owes a front end its error as an event.
fn json_requested() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--progress=json"
            || (a == "--progress" && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if e.use_stderr() && json_requested() {
                let message = e.render().to_string();
                let first = message
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                cli::json::JsonEvents::stderr().error_line(ErrorKind::Usage.code(), first);
                // The stream stays JSON only: clap's own text is not a line a front end
                // can parse.
                std::process::exit(e.exit_code());
            }
            e.exit()
        }
    };
    let cancel = oci2wsl::cancel::Cancel::new();
    oci2wsl::interrupt::install_cleanup(cancel.clone());
    // The cache alone, no image.
    if cli.cache_list.is_some() || cli.cache_prune.is_some() {
        return match cache_command(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let e = oci2wsl::error::Error::from(e);
                eprintln!("oci2wsl: error: {}", printable(&e.to_string()));
                ExitCode::from(if e.kind() == ErrorKind::Usage { 2 } else { 1 })
            }
        };
    }
    let json =
        (cli.progress == ProgressArg::Json).then(|| Arc::new(cli::json::JsonEvents::stderr()));
    let mode = match cli.progress {
        ProgressArg::Auto => cli::progress::Mode::Auto,
        ProgressArg::Plain => cli::progress::Mode::Plain,
        ProgressArg::None | ProgressArg::Json => cli::progress::Mode::None,
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let display = Arc::new(cli::progress::Display::new(mode, cli.quiet, terminal));
    {
        // Ctrl-C: the bars go before the "interrupted" line, so none is left half drawn.
        let display = display.clone();
        oci2wsl::interrupt::stop_on_interrupt(Box::new(move || display.clear()));
    }
    let observer: Arc<dyn Observer> = match &json {
        Some(json) => json.clone(),
        None => Arc::new(RunLog {
            display: display.clone(),
            retries: (terminal && !cli.quiet) || cli.verbose,
            requests: cli.verbose,
        }),
    };
    if cli.inspect {
        return inspect(&cli, json.as_ref(), display.clone());
    }
    let result = command_line_options(&cli).and_then(|mut opts| {
        opts.cancel = cancel;
        // Housekeeping, not a problem with the run: silent with --quiet.
        for stale in output::remove_stale_temp_files(&opts.destination) {
            if cli.quiet {
                continue;
            }
            observer.event(&Event::Warning {
                message: format!(
                    "removed {}, left by an earlier run that was killed",
                    stale.display()
                ),
            });
        }
        let summary = pipeline::run(&opts, observer.clone());
        display.clear();
        let summary = summary?;
        if let Some(json) = &json {
            json.summary(&summary, &opts.destination);
        } else if !cli.quiet {
            for line in cli::summary::lines(&summary, &opts.destination) {
                eprintln!("{line}");
            }
            if !summary.wsl.set.is_empty() {
                eprintln!("  WSL: {}", summary.wsl.set.join("; "));
            }
            for warning in &summary.wsl.warnings {
                eprintln!("oci2wsl: warning: {}", printable(warning));
            }
            if let Some(imported) = &summary.imported {
                let name = &imported.name;
                eprintln!(
                    "  imported as WSL distribution {name} in {}{}; start it with: wsl -d {name}",
                    imported.dir.display(),
                    if imported.wsl_said.is_empty() {
                        String::new()
                    } else {
                        format!(" (wsl: {})", imported.wsl_said)
                    }
                );
                if let Some(hint) = summary.wsl.start_hint(name) {
                    eprintln!("  {hint}");
                }
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == oci2wsl::error::ErrorKind::Interrupted => {
            eprintln!("oci2wsl: interrupted; no output was written");
            ExitCode::from(130)
        }
        Err(e) => {
            match &json {
                Some(json) => json.error(&e),
                None => eprintln!("oci2wsl: error: {}", printable(&e.to_string())),
            }
            ExitCode::from(exit_code(e.kind()))
        }
    }
}
