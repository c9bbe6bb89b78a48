//! The command line: parse arguments, run the pipeline, report one line.

mod cli;

use clap::{Parser, ValueEnum};
use oci2wsl::events::{Event, Observer};
use oci2wsl::image::platform::Platform;
use oci2wsl::image::PlatformChoice;
use oci2wsl::output::{self, Destination, OutputCompression};
use oci2wsl::pipeline::{self, Options};
use oci2wsl::source::remote::auth::Credentials;
use oci2wsl::source::remote::RegistryOptions;
use oci2wsl::terminal::printable;
use oci2wsl::wsl::{ImportOptions, WslOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

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
    image: String,

    /// Write to FILE instead of standard output; compression follows the extension
    /// (.tar, .tar.gz/.tgz, .tar.zst, and .wsl: a gzip tar with /etc/wsl-distribution.conf
    /// for `wsl --install --from-file`). `-` means standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<String>,

    /// Compression of the output, overriding the extension.
    #[arg(long, value_enum)]
    compression: Option<CompressionArg>,

    /// Compression level (gzip 0-12, default 6; zstd 1-22, default 2).
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

    /// The plain flattened file system: no /etc/wsl.conf user, no environment script, no
    /// image metadata.
    #[arg(long, help_heading = "WSL")]
    no_wsl_config: bool,

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

fn options(cli: &Cli) -> anyhow::Result<Options> {
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
        image: cli.image.clone(),
        destination,
        compression,
        level,
        platform,
        jobs: jobs.max(1),
        max_expansion: cli.max_expansion,
        registry: RegistryOptions {
            creds: if cli.password_stdin && cli.image.ends_with(":-") {
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
            ..Default::default()
        },
        cancel: Default::default(),
        wsl: (!cli.no_wsl_config).then(|| WslOptions {
            user: cli.user.clone(),
            boot: cli.boot,
            distribution_name: cli.distribution_name.clone().or(wsl_file_name),
            distribution_name_chosen: cli.distribution_name.is_some(),
        }),
        import: cli.import.as_ref().map(|name| ImportOptions {
            name: name.clone(),
            install_dir: cli.install_dir.clone(),
            version: cli.wsl_version,
            wsl_exe: cli.wsl_exe.clone(),
        }),
    })
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cancel = oci2wsl::cancel::Cancel::new();
    oci2wsl::interrupt::install_cleanup(cancel.clone());
    let display = Arc::new(cli::progress::Display::new(
        cli.quiet,
        std::io::stderr().is_terminal(),
    ));
    let result = options(&cli)
        .map_err(oci2wsl::error::Error::from)
        .and_then(|mut opts| {
            opts.cancel = cancel;
            // Housekeeping, not a problem with the run: silent with --quiet.
            for stale in output::remove_stale_temp_files(&opts.destination) {
                if cli.quiet {
                    continue;
                }
                display.event(&Event::Warning {
                    message: format!(
                        "removed {}, left by an earlier run that was killed",
                        stale.display()
                    ),
                });
            }
            let summary = pipeline::run(&opts, display.clone());
            display.clear();
            let summary = summary?;
            if !cli.quiet {
                eprintln!("{}", summary.line(&opts.destination));
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
            eprintln!("oci2wsl: error: {}", printable(&e.to_string()));
            ExitCode::from(1)
        }
    }
}
