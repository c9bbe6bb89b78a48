//! Platform selection: which manifest of an index is "the image" for this run.

use std::fmt;

/// An OCI platform: `os/architecture[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`…
    pub os: String,
    /// `amd64`, `arm64`… (GOARCH names).
    pub architecture: String,
    /// `v8` for arm64, `v7` for arm…
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`, as docker's `--platform` takes it.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = text.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "platform {text:?} is not of the form os/arch[/variant] (for example linux/arm64)"
            ));
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalize_arch(&parts[1].to_ascii_lowercase()).to_string(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// Linux on the architecture this binary runs on: WSL distributions run the host's
    /// architecture, whatever the OS of the host is.
    pub fn host_linux() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    /// Whether an index entry's platform satisfies this request. A request without a variant
    /// accepts any variant; `arm64` and `arm64/v8` are the same thing, as in containerd.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != normalize_arch(architecture) {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have = variant.unwrap_or(default_variant(&self.architecture));
                want == have
            }
        }
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

fn default_variant(arch: &str) -> &'static str {
    match arch {
        "arm64" => "v8",
        _ => "",
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_forms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn matching_rules() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(arm64.matches("linux", "arm64", None));
        let arm64v8 = Platform::parse("linux/arm64/v8").unwrap();
        assert!(arm64v8.matches("linux", "arm64", None));
        let armv7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!armv7.matches("linux", "arm", Some("v6")));
        assert!(!armv7.matches("windows", "arm", Some("v7")));
        assert!(!Platform::parse("linux/amd64")
            .unwrap()
            .matches("unknown", "unknown", None));
    }
}
