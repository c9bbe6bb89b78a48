//! The image config as WSL configuration: what `docker run` would have applied (user,
//! environment, working directory, entrypoint) written into the files WSL reads.
//!
//! It runs as a [`crate::layer::Augment`]: the index pass captures the image's `/etc/passwd`,
//! `/etc/wsl.conf` and friends, and the files generated here replace or join them in the
//! same output stream, so no second pass over the layers is needed.

use super::ini::Ini;
use crate::image::Image;
use crate::layer::entry::{EntryKind, EntryMeta};
use crate::layer::Augment;
use anyhow::{anyhow, bail, Result};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub const WSL_CONF: &str = "etc/wsl.conf";
pub const DISTRIBUTION_CONF: &str = "etc/wsl-distribution.conf";
pub const ENV_SCRIPT: &str = "etc/profile.d/oci2wsl-env.sh";
pub const METADATA: &str = "etc/oci2wsl/image.json";
/// The directory of [`METADATA`], which only the generated files put there.
pub const METADATA_DIR: &str = "etc/oci2wsl";
const PASSWD: &str = "etc/passwd";
const PROFILE: &str = "etc/profile";

/// Variables that belong to the session, not the image: WSL, login or the shell sets them,
/// and an image's value (often a build machine's) would be wrong in a WSL session.
const SESSION_VARIABLES: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "TERM",
    "HOSTNAME",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XDG_RUNTIME_DIR",
    "PULSE_SERVER",
    "WSLENV",
    "WSL_DISTRO_NAME",
    "WSL_INTEROP",
    "_",
];

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct WslOptions {
    /// `--user NAME`: the default user, instead of the image's `User`.
    pub user: Option<String>,
    /// `--boot`: run the entrypoint through `[boot] command=`.
    pub boot: bool,
    /// Set for `-o NAME.wsl`: write `/etc/wsl-distribution.conf` with this default
    /// distribution name.
    pub distribution_name: Option<DistributionName>,
}

/// The name `wsl --install --from-file` offers, and who chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DistributionName {
    /// `--distribution-name`: replaces a name the image's own file sets.
    Chosen(String),
    /// Made from the output file's name: used only when the image sets none.
    FromFileName(String),
}

impl DistributionName {
    /// The name itself.
    pub fn name(&self) -> &str {
        match self {
            DistributionName::Chosen(n) | DistributionName::FromFileName(n) => n,
        }
    }
}

/// The translation of one image; after the flatten, `report` says what was set.
pub struct Translation<'a> {
    image: &'a Image,
    source: String,
    options: WslOptions,
    pub report: Report,
}

/// What the WSL translation set, and what it could not.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// What was written, for the summary ("default user app (uid 1000)").
    pub set: Vec<String>,
    /// What could not be translated as the image says.
    pub warnings: Vec<String>,
    /// The image's Entrypoint and Cmd, WorkingDir and exposed ports, and whether `--boot`
    /// starts them: after an import, the user is told how to start them by hand.
    pub entrypoint: Vec<String>,
    /// The image's WorkingDir.
    pub working_dir: Option<String>,
    /// The image's exposed ports.
    pub ports: Vec<String>,
    /// `--boot`: the distribution starts the command itself.
    pub boot: bool,
}

impl Report {
    /// How to start the image's command in the imported distribution `name`, or `None`
    /// when the image has none.
    pub fn start_hint(&self, name: &str) -> Option<String> {
        if self.entrypoint.is_empty() {
            return None;
        }
        let word = |w: &str| {
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+%".contains(&b))
            {
                w.to_string()
            } else {
                shell_quote(w)
            }
        };
        let mut hint = format!("the image's command: wsl -d {name}");
        if let Some(dir) = &self.working_dir {
            hint.push_str(&format!(" --cd {}", word(dir)));
        }
        hint.push_str(" --");
        for arg in &self.entrypoint {
            hint.push(' ');
            hint.push_str(&word(arg));
        }
        if !self.ports.is_empty() {
            hint.push_str(&format!(
                "; it listens on {} (WSL 2 forwards localhost ports to Windows)",
                self.ports.join(", ")
            ));
        }
        if self.boot {
            hint.push_str("; [boot] command starts it when the distribution starts");
        } else {
            hint.push_str("; --boot would start it with the distribution");
        }
        Some(hint)
    }
}

/// One line of `/etc/passwd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u64,
    pub gid: u64,
    pub home: String,
}

pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// The image's `User` (`name`, `uid`, `name:group`, `uid:gid`) looked up in its passwd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    /// No `User`: containers run as root, and so does WSL by default.
    Unset,
    Found {
        entry: PasswdEntry,
        /// The group part of `User`, when it names another group than the user's own:
        /// WSL logs in with the primary group from passwd.
        other_group: Option<String>,
    },
    Missing(String),
}

pub fn lookup_user(spec: &str, passwd: &[PasswdEntry]) -> UserLookup {
    let spec = spec.trim();
    if spec.is_empty() {
        return UserLookup::Unset;
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let found = match user.parse::<u64>() {
        Ok(uid) => passwd.iter().find(|e| e.uid == uid),
        Err(_) => passwd.iter().find(|e| e.name == user),
    };
    match found {
        Some(entry) => {
            let other_group = group
                .filter(|g| !g.is_empty() && g.parse::<u64>().ok() != Some(entry.gid))
                .filter(|g| g.parse::<u64>().is_ok() || *g != entry.name)
                .map(str::to_string);
            UserLookup::Found {
                entry: entry.clone(),
                other_group,
            }
        }
        None => UserLookup::Missing(user.to_string()),
    }
}

/// `'value'` for a POSIX shell: nothing inside single quotes is special but the quote.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// The `sh -c` script WSL's `[boot] command` runs: change to `dir`, read the image's
/// environment, exec `argv`. It is printable ASCII whatever the arguments hold, so that
/// `wsl.conf` can carry it unchanged (see `ini::quote`): a word with other characters is
/// spelled as `printf` octal escapes into a variable, with a sentinel `_` that keeps the
/// trailing newlines a command substitution would drop.
pub fn boot_script(dir: Option<&str>, argv: &[String]) -> Result<String> {
    let mut prelude = String::new();
    let mut word = |value: &str, what: &str| -> Result<String> {
        if value.contains('\0') {
            bail!("--boot: the image's {what} {value:?} has a NUL character, which no command line can hold");
        }
        if value.chars().all(|c| matches!(c, ' '..='~' | '\n' | '\t')) {
            return Ok(shell_quote(value));
        }
        let name = format!("__oci2wsl_{}", prelude.matches("=$(").count());
        let mut format = String::new();
        for (i, b) in value.bytes().enumerate() {
            // A format starting with `-` would be read as an option of printf.
            match b {
                b'-' if i == 0 => format.push_str("\\055"),
                b' '..=b'~' if !matches!(b, b'\'' | b'\\' | b'%') => format.push(b as char),
                _ => format.push_str(&format!("\\{b:03o}")),
            }
        }
        prelude.push_str(&format!("{name}=$(printf '{format}_'); "));
        Ok(format!("\"${{{name}%_}}\""))
    };
    let dir = dir.map(|d| word(d, "WorkingDir")).transpose()?;
    let argv = argv
        .iter()
        .map(|a| word(a, "Entrypoint or Cmd argument"))
        .collect::<Result<Vec<_>>>()?;
    let mut command = prelude;
    if let Some(dir) = dir {
        // A missing directory stops the start, as it stops `docker run`.
        command.push_str(&format!("cd {dir} || exit 1; "));
    }
    command.push_str(&format!("[ ! -r /{ENV_SCRIPT} ] || . /{ENV_SCRIPT}; exec"));
    for arg in argv {
        command.push(' ');
        command.push_str(&arg);
    }
    Ok(command)
}

fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Seconds since the epoch of an RFC 3339 time (`2023-11-14T22:13:20.5+01:00`), for the
/// mtime of generated files: the image's creation time keeps the output reproducible.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { text.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // `text` comes from the image: every slice is checked (`get`), since a multi-byte
    // character where a digit should be would make a plain index panic.
    let mut rest = text.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest.as_bytes() {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2]
            if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) =>
        {
            let digit = |b: &u8| i64::from(b - b'0');
            let (oh, om) = (digit(h1) * 10 + digit(h2), digit(m1) * 10 + digit(m2));
            if oh > 23 || om > 59 {
                return None;
            }
            let sign = if *sign == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + s - offset)
}

impl<'a> Translation<'a> {
    pub fn new(image: &'a Image, source: String, options: WslOptions) -> Translation<'a> {
        Translation {
            image,
            source,
            options,
            report: Report::default(),
        }
    }

    fn config(&self) -> Option<&oci_spec::image::Config> {
        self.image.config.config().as_ref()
    }

    fn mtime(&self) -> i64 {
        self.image
            .config
            .created()
            .as_deref()
            .and_then(parse_rfc3339)
            .filter(|t| *t > 0)
            .unwrap_or(0)
    }

    fn file(&self, path: &str, content: Vec<u8>) -> (EntryMeta, Vec<u8>) {
        let mut meta = EntryMeta::implicit_dir(path.as_bytes().to_vec());
        meta.kind = EntryKind::Regular;
        meta.mode = 0o644;
        meta.size = content.len() as u64;
        meta.mtime = self.mtime();
        (meta, content)
    }

    /// The default user: `--user`, else the image's `User`, resolved against the image's
    /// passwd. `Ok(None)` leaves WSL's default (root).
    fn default_user(&mut self, passwd: &[PasswdEntry]) -> Result<Option<PasswdEntry>> {
        if let Some(name) = self.options.user.clone() {
            return match lookup_user(&name, passwd) {
                UserLookup::Found { entry, .. } => Ok(Some(entry)),
                _ => bail!(
                    "--user {}: the image's /etc/passwd has no such user{}",
                    crate::terminal::printable(&name),
                    if passwd.is_empty() {
                        " (the image has no /etc/passwd)"
                    } else {
                        ""
                    }
                ),
            };
        }
        let spec = self.config().and_then(|c| c.user().clone());
        let spec = spec.unwrap_or_default();
        match lookup_user(&spec, passwd) {
            UserLookup::Unset => Ok(None),
            UserLookup::Found { entry, other_group } => {
                if let Some(group) = other_group {
                    self.report.warnings.push(format!(
                        "the image runs as {spec:?}; WSL logs in with {}'s primary group (gid {}), not {group}",
                        entry.name, entry.gid
                    ));
                }
                Ok(Some(entry))
            }
            UserLookup::Missing(user) => {
                self.report.warnings.push(format!(
                    "the image's user {user:?} has no entry in its /etc/passwd; the default user stays root (use --user NAME)"
                ));
                Ok(None)
            }
        }
    }

    fn env_script(&mut self) -> Option<Vec<u8>> {
        let env = self.config().and_then(|c| c.env().clone())?;
        let mut lines = vec![
            "# Generated by oci2wsl: the image's environment (its config's Env) for login shells."
                .to_string(),
            format!("# Image: {}", self.source),
        ];
        let mut path = None;
        let mut set = 0;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut skipped = Vec::new();
        for item in &env {
            let (name, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
            if !is_shell_name(name) {
                skipped.push(name.to_string());
                continue;
            }
            if SESSION_VARIABLES.contains(&name) {
                skipped.push(name.to_string());
                continue;
            }
            if name == "PATH" {
                path = Some(value.to_string());
                continue;
            }
            let line = format!("export {name}={}", shell_quote(value));
            // A repeated name: the last value wins, as in `docker run`.
            match seen.get(name) {
                Some(i) => lines[*i] = line,
                None => {
                    seen.insert(name.to_string(), lines.len());
                    lines.push(line);
                    set += 1;
                }
            }
        }
        if let Some(path) = &path {
            // The image's PATH first, then every directory of the session's PATH that it
            // lacks: WSL appends the Windows PATH, and a login shell must keep it.
            lines.push(format!("__oci2wsl_path={}", shell_quote(path)));
            lines.extend(
                [
                    r#"__oci2wsl_rest="${PATH-}""#,
                    r#"while [ -n "$__oci2wsl_rest" ]; do"#,
                    r#"  __oci2wsl_dir="${__oci2wsl_rest%%:*}""#,
                    r#"  case "$__oci2wsl_rest" in *:*) __oci2wsl_rest="${__oci2wsl_rest#*:}" ;; *) __oci2wsl_rest= ;; esac"#,
                    r#"  case ":$__oci2wsl_path:" in *":$__oci2wsl_dir:"*) ;; *) [ -z "$__oci2wsl_dir" ] || __oci2wsl_path="$__oci2wsl_path:$__oci2wsl_dir" ;; esac"#,
                    r#"done"#,
                    r#"export PATH="$__oci2wsl_path""#,
                    r#"unset __oci2wsl_path __oci2wsl_rest __oci2wsl_dir"#,
                ]
                .map(str::to_string),
            );
            set += 1;
        }
        if !skipped.is_empty() {
            self.report.warnings.push(format!(
                "not carried into WSL sessions (set by WSL or login, or not a shell name): {}",
                skipped.join(", ")
            ));
        }
        if set == 0 {
            return None;
        }
        self.report.set.push(format!(
            "{set} environment variable{} in /{ENV_SCRIPT}",
            if set == 1 { "" } else { "s" }
        ));
        let mut text = lines.join("\n");
        text.push('\n');
        Some(text.into_bytes())
    }

    /// The environment script the conversion would write, without reading any layer (for
    /// inspect); what it sets and skips lands in `report` as for a conversion.
    pub fn environment_script(&mut self) -> Option<String> {
        self.env_script()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `[boot] command=`: the entrypoint and command as `docker run` would start them.
    fn boot_command(&mut self, user: Option<&PasswdEntry>) -> Result<String> {
        let config = self.config();
        let mut argv: Vec<String> = config
            .and_then(|c| c.entrypoint().clone())
            .unwrap_or_default();
        argv.extend(config.and_then(|c| c.cmd().clone()).unwrap_or_default());
        if argv.is_empty() {
            bail!("--boot: the image has neither Entrypoint nor Cmd");
        }
        let dir = config
            .and_then(|c| c.working_dir().clone())
            .filter(|d| !d.is_empty());
        let command = boot_script(dir.as_deref(), &argv)?;
        if let Some(u) = user.filter(|u| u.uid != 0) {
            self.report.warnings.push(format!(
                "--boot: WSL runs [boot] command as root, not as {}",
                u.name
            ));
        }
        Ok(command)
    }

    /// An image's own file with a line WSL cannot parse: WSL reads nothing after it, so
    /// the keys we set went before it, and the user should know about the rest.
    fn warn_unreadable(&mut self, invalid: Option<(usize, String, String)>, path: &str) {
        if let Some((line, text, why)) = invalid {
            self.report.warnings.push(format!(
                "the image's /{path} line {line} ({text:?}) is not valid for WSL ({why}): WSL ignores it and everything after it"
            ));
        }
    }

    fn metadata(&self, user: Option<&PasswdEntry>) -> Vec<u8> {
        let c = self.config();
        let mut ports: Vec<String> = c
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        ports.sort();
        let labels: BTreeMap<String, String> = c
            .and_then(|c| c.labels().clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let cfg = &self.image.config;
        let mut platform = format!("{}/{}", cfg.os(), cfg.architecture());
        if let Some(v) = cfg.variant() {
            platform.push('/');
            platform.push_str(v);
        }
        let value = json!({
            "source": self.source,
            "manifestDigest": self.image.manifest_digest.as_ref().map(|d| d.to_string()),
            "configDigest": self.image.config_digest.to_string(),
            "platform": platform,
            "created": cfg.created(),
            "user": c.and_then(|c| c.user().clone()),
            "defaultUser": user.map(|u| u.name.clone()),
            "env": c.and_then(|c| c.env().clone()).unwrap_or_default(),
            "workingDir": c.and_then(|c| c.working_dir().clone()),
            "entrypoint": c.and_then(|c| c.entrypoint().clone()),
            "cmd": c.and_then(|c| c.cmd().clone()),
            "labels": labels,
            "exposedPorts": ports,
            "stopSignal": c.and_then(|c| c.stop_signal().clone()),
            "generator": format!("oci2wsl {}", env!("CARGO_PKG_VERSION")),
        });
        let mut text = serde_json::to_vec_pretty(&value).expect("JSON of strings");
        text.push(b'\n');
        text
    }
}

fn text_of(captured: &HashMap<Vec<u8>, Arc<Vec<u8>>>, path: &str) -> Option<String> {
    captured
        .get(path.as_bytes())
        .map(|c| String::from_utf8_lossy(c).into_owned())
}

impl Augment for Translation<'_> {
    fn wanted(&self) -> Vec<Vec<u8>> {
        [PASSWD, WSL_CONF, DISTRIBUTION_CONF, PROFILE]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect()
    }

    fn files(
        &mut self,
        captured: &HashMap<Vec<u8>, Arc<Vec<u8>>>,
    ) -> Result<Vec<(EntryMeta, Vec<u8>)>> {
        let passwd = parse_passwd(&text_of(captured, PASSWD).unwrap_or_default());
        let user = self.default_user(&passwd)?;
        let mut out = Vec::new();

        let image_conf = text_of(captured, WSL_CONF);
        let mut conf = Ini::parse(image_conf.as_deref().unwrap_or(""));
        let conf_unreadable = conf.first_invalid();
        let mut conf_changed = false;
        if let Some(u) = &user {
            let image_default = conf.get("user", "default");
            match image_default {
                // The image was built for WSL and names its default user: keep it unless
                // --user says otherwise.
                Some(d) if self.options.user.is_none() && d != u.name => {
                    self.report.set.push(format!(
                        "default user {d} kept from the image's /{WSL_CONF} (its config says {})",
                        u.name
                    ));
                }
                _ => {
                    conf.set("user", "default", &u.name).map_err(|e| {
                        anyhow!("the default user {:?} in /{WSL_CONF}: {e}", u.name)
                    })?;
                    conf_changed = true;
                    self.report.set.push(format!(
                        "default user {} (uid {}) in /{WSL_CONF}",
                        u.name, u.uid
                    ));
                }
            }
        }
        if self.options.boot {
            let command = self.boot_command(user.as_ref())?;
            conf.set("boot", "command", &command)
                .map_err(|e| anyhow!("--boot: /{WSL_CONF}: {e}"))?;
            conf_changed = true;
            self.report
                .set
                .push(format!("[boot] command in /{WSL_CONF}: {command}"));
        }
        if conf_changed {
            self.warn_unreadable(conf_unreadable, WSL_CONF);
            conf.note("Keys set by oci2wsl from the image config (see /etc/oci2wsl/image.json)");
            out.push(self.file(WSL_CONF, conf.text().into_bytes()));
        }

        if let Some(script) = self.env_script() {
            let profile = text_of(captured, PROFILE).unwrap_or_default();
            if !profile.contains("profile.d") {
                self.report.warnings.push(format!(
                    "the image's /etc/profile does not read /etc/profile.d, so login shells will not see /{ENV_SCRIPT}"
                ));
            }
            out.push(self.file(ENV_SCRIPT, script));
        }

        if let Some(chosen) = self.options.distribution_name.clone() {
            let name = chosen.name();
            let mut dist = Ini::parse(
                text_of(captured, DISTRIBUTION_CONF)
                    .as_deref()
                    .unwrap_or(""),
            );
            let dist_unreadable = dist.first_invalid();
            dist.note("Generated by oci2wsl for `wsl --install --from-file`");
            let written = |e: anyhow::Error| anyhow!("/{DISTRIBUTION_CONF}: {e}");
            if matches!(chosen, DistributionName::Chosen(_))
                || dist.get("oobe", "defaultName").is_none()
            {
                dist.set("oobe", "defaultName", name).map_err(written)?;
            }
            if let Some(u) = &user {
                dist.set("oobe", "defaultUid", &u.uid.to_string())
                    .map_err(written)?;
            }
            for section in ["shortcut", "windowsterminal"] {
                if dist.get(section, "enabled").is_none() {
                    dist.set(section, "enabled", "true").map_err(written)?;
                }
            }
            self.warn_unreadable(dist_unreadable, DISTRIBUTION_CONF);
            self.report.set.push(format!(
                "/{DISTRIBUTION_CONF} (name {}{})",
                dist.get("oobe", "defaultName").unwrap_or_default(),
                user.as_ref()
                    .map(|u| format!(", uid {}", u.uid))
                    .unwrap_or_default()
            ));
            out.push(self.file(DISTRIBUTION_CONF, dist.text().into_bytes()));
        }

        if let Some(c) = self.image.config.config().as_ref() {
            let mut argv = c.entrypoint().clone().unwrap_or_default();
            argv.extend(c.cmd().clone().unwrap_or_default());
            let mut ports = c.exposed_ports().clone().unwrap_or_default();
            ports.sort();
            self.report.entrypoint = argv;
            self.report.working_dir = c.working_dir().clone().filter(|d| !d.is_empty());
            self.report.ports = ports;
            self.report.boot = self.options.boot;
        }

        out.push(self.file(METADATA, self.metadata(user.as_ref())));
        // Dated like the files in it, not 1970: after them, so the tree fills it in.
        let mut dir = EntryMeta::implicit_dir(METADATA_DIR.as_bytes().to_vec());
        dir.mtime = self.mtime();
        out.push((dir, Vec::new()));
        self.report
            .set
            .push(format!("image metadata in /{METADATA}"));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD_TEXT: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n# note\nbroken line\n";

    #[test]
    fn users_by_name_id_and_group() {
        let p = parse_passwd(PASSWD_TEXT);
        assert_eq!(p.len(), 2);
        assert_eq!(lookup_user("", &p), UserLookup::Unset);
        let app = |other: Option<&str>| UserLookup::Found {
            entry: p[1].clone(),
            other_group: other.map(str::to_string),
        };
        assert_eq!(lookup_user("app", &p), app(None));
        assert_eq!(lookup_user("1000", &p), app(None));
        assert_eq!(lookup_user("1000:1001", &p), app(None));
        assert_eq!(lookup_user("app:app", &p), app(None));
        assert_eq!(lookup_user("app:0", &p), app(Some("0")));
        assert_eq!(lookup_user("app:wheel", &p), app(Some("wheel")));
        assert_eq!(lookup_user("4242", &p), UserLookup::Missing("4242".into()));
        assert_eq!(
            lookup_user("nobody:0", &p),
            UserLookup::Missing("nobody".into())
        );
    }

    #[test]
    fn quoting_survives_a_real_shell() {
        for value in ["plain", "it's", "a \"b\" $c `d` \\e", "", "new\nline", "'"] {
            let script = format!("V={}; printf %s \"$V\"", shell_quote(value));
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1700000000));
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20.123456789+01:00"),
            Some(1700000000)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951782400));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
        // Issue 12: a multi-byte character inside the offset made a byte-index slice panic.
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+1é00"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+é:00"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:2é"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20é"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+01:0é"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+1:000"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+-1:00"), None);
    }

    /// Writes `argv` (run in `dir`) as `[boot] command`, reads it back as WSL would, runs it
    /// with `sh` as WSL would, and returns what the program saw: its directory, then argv.
    fn boot_round_trip(dir: &str, argv: &[String]) -> Vec<Vec<u8>> {
        let script = boot_script(Some(dir), argv).unwrap();
        let mut ini = Ini::parse("");
        ini.set("boot", "command", &script).unwrap();
        let read = crate::wsl::wsl_conf_oracle::read(ini.text().as_bytes());
        assert!(read.warnings.is_empty(), "{:?}", read.warnings);
        assert_eq!(read.get("boot.command"), Some(script.as_str()));
        // `exec` replaced by a function that prints, so no program is needed.
        let shown = script.replacen(
            &format!("{ENV_SCRIPT}; exec "),
            "/dev/null; show() { printf '%s\\0' \"$PWD\" \"$@\"; }; show ",
            1,
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &shown])
            .current_dir("/")
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}");
        let mut words: Vec<Vec<u8>> = out.stdout.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
        assert_eq!(words.pop(), Some(vec![]));
        words
    }

    #[test]
    fn boot_script_round_trips_through_wsl_conf_and_sh() {
        const ALPHABET: &[&str] = &[
            "a",
            " ",
            "\t",
            "\n",
            "\r",
            "'",
            "\"",
            "\\",
            "#",
            "%",
            "$",
            "`",
            "\u{e9}",
            "\u{1f600}",
            "\u{1}",
            "\u{8}",
            "\u{7f}",
            "_",
            "-",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for _ in 0..200 {
            let mut word = || -> String {
                (0..next(9))
                    .map(|_| ALPHABET[next(ALPHABET.len())])
                    .collect()
            };
            let argv: Vec<String> = (0..4).map(|_| word()).collect();
            let seen = boot_round_trip("/", &argv);
            assert_eq!(seen[0], b"/");
            let want: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
            assert_eq!(seen[1..], want[..], "{argv:?}");
        }
    }

    #[test]
    fn boot_script_refuses_nul() {
        let err = boot_script(None, &["a\0b".to_string()]).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn start_hints() {
        let mut report = Report::default();
        assert_eq!(report.start_hint("pg"), None);
        report.entrypoint = vec!["docker-entrypoint.sh".into(), "it's".into()];
        report.working_dir = Some("/var/lib/postgresql".into());
        report.ports = vec!["5432/tcp".into()];
        assert_eq!(
            report.start_hint("pg").unwrap(),
            "the image's command: wsl -d pg --cd /var/lib/postgresql -- docker-entrypoint.sh 'it'\\''s'; it listens on 5432/tcp (WSL 2 forwards localhost ports to Windows); --boot would start it with the distribution"
        );
        report.boot = true;
        assert!(report
            .start_hint("pg")
            .unwrap()
            .ends_with("[boot] command starts it when the distribution starts"));
    }

    #[test]
    fn shell_names() {
        assert!(is_shell_name("PG_VERSION"));
        assert!(is_shell_name("_x1"));
        assert!(!is_shell_name("1X"));
        assert!(!is_shell_name("A-B"));
        assert!(!is_shell_name(""));
    }
}
