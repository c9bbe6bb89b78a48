//! `--inspect` as text: what a person reads before pulling an image.

use oci2wsl::inspect::Inspection;
use oci2wsl::pipeline::human as size;
use oci2wsl::terminal::printable;
use std::fmt::Write;

/// The inspection as aligned text. Every string that comes from the image goes through
/// `printable`: a hostile label must not drive the terminal.
pub fn human(i: &Inspection) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| {
        let _ = writeln!(out, "{label:<12} {}", printable(value));
    };
    line("Image:", &i.image);
    if let Some(d) = &i.index_digest {
        line("Index:", d);
    }
    if let Some(d) = &i.manifest_digest {
        line("Manifest:", d);
    }
    line("Config:", &i.config_digest);
    line("Platform:", &i.platform);
    if !i.platforms.is_empty() {
        let _ = writeln!(out, "Platforms in the index (* = chosen):");
        for p in &i.platforms {
            let _ = writeln!(
                out,
                "  {} {:<18} {} {:>10}{}",
                if p.chosen { '*' } else { ' ' },
                printable(p.platform.as_deref().unwrap_or("(none stated)")),
                p.digest,
                size(p.size),
                if p.attestation { "  attestation" } else { "" }
            );
        }
    }
    let _ = writeln!(
        out,
        "Layers:      {}, {} to download",
        i.layers.len(),
        size(i.download_bytes)
    );
    for (n, l) in i.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>3}  {}  {:>10}  {}",
            n + 1,
            l.digest.as_deref().unwrap_or(&l.diff_id),
            l.size.map(size).unwrap_or_else(|| "?".into()),
            printable(&l.media_type)
        );
    }
    let c = &i.config;
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            serde_json::to_string(v).unwrap_or_default()
        }
    };
    let _ = writeln!(out, "Image config:");
    let mut field = |label: &str, value: &str| {
        let _ = writeln!(out, "  {label:<13} {}", printable(value));
    };
    field("User:", c.user.as_deref().unwrap_or("- (root)"));
    field("WorkingDir:", c.working_dir.as_deref().unwrap_or("-"));
    field("Entrypoint:", &list(&c.entrypoint));
    field("Cmd:", &list(&c.cmd));
    field("ExposedPorts:", &list(&c.exposed_ports));
    if c.env.is_empty() {
        field("Env:", "-");
    }
    for (n, e) in c.env.iter().enumerate() {
        field(if n == 0 { "Env:" } else { "" }, e);
    }
    if c.labels.is_empty() {
        field("Labels:", "-");
    }
    for (n, (k, v)) in c.labels.iter().enumerate() {
        field(if n == 0 { "Labels:" } else { "" }, &format!("{k}={v}"));
    }
    match &i.wsl {
        None => {
            let _ = writeln!(out, "WSL:          nothing added (--no-wsl-config)");
        }
        Some(w) => {
            let _ = writeln!(out, "WSL (what a conversion would write):");
            let user = match &w.default_user {
                Some(u) => format!(
                    "{u} in /etc/wsl.conf, if the image's /etc/passwd has it (checked when converting)"
                ),
                None => "root (WSL's default)".to_string(),
            };
            let _ = writeln!(out, "  Default user:  {}", printable(&user));
            match &w.environment_script {
                None => {
                    let _ = writeln!(out, "  Environment:   nothing to set");
                }
                Some(script) => {
                    let _ = writeln!(out, "  /etc/profile.d/oci2wsl-env.sh:");
                    for l in script.lines() {
                        let _ = writeln!(out, "    {}", printable(l));
                    }
                }
            }
            for warning in &w.warnings {
                let _ = writeln!(out, "  warning: {}", printable(warning));
            }
        }
    }
    out
}
