//! Which compressor the output goes through, and at what level.

use anyhow::{bail, Result};

/// The output's compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCompression {
    /// A plain tar.
    None,
    /// gzip, compressed on several threads.
    Gzip,
    /// zstd.
    Zstd,
}

impl OutputCompression {
    /// From the output file name: `.tar.gz`/`.tgz`/`.wsl` are gzip, `.tar.zst`/`.tzst` zstd,
    /// anything else plain tar.
    pub fn from_file_name(name: &str) -> OutputCompression {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".tgz") || lower.ends_with(".wsl") {
            OutputCompression::Gzip
        } else if lower.ends_with(".zst") || lower.ends_with(".tzst") || lower.ends_with(".zstd") {
            OutputCompression::Zstd
        } else {
            OutputCompression::None
        }
    }

    pub fn default_level(self) -> i32 {
        match self {
            OutputCompression::None => 0,
            // libdeflate's 2, the cheapest level whose output stays within 1.02x of `gzip -6`
            // (the promise): measured on the benchmark images, 1.012x and 1.011x the size of
            // `gzip -6` for 29% less deflate CPU than libdeflate's 6, which was 0.7% smaller
            // than `gzip -6` (size nobody asked for). 1 is 1.033x, over the bound.
            OutputCompression::Gzip => 2,
            // Not zstd's own 3: 2 spends a quarter less CPU for 2.8% more output (measured
            // on the benchmark image), which keeps `.tar.zst` within 1.2x of a plain tar on
            // two cores, where 3 took 1.24-1.31x. `--level 3` (or 19) is one flag away.
            // Not 1 either: about a tenth less CPU, but its output is larger than `gzip -6`'s
            // (365 against 357 MiB on the benchmark tar): `.tar.zst` would no longer be the
            // smaller file.
            OutputCompression::Zstd => 2,
        }
    }

    pub fn check_level(self, level: i32) -> Result<()> {
        let (lo, hi) = match self {
            OutputCompression::None => bail!("--level needs a compressed output (gzip or zstd)"),
            // 10-12 are libdeflate's slower, denser levels.
            OutputCompression::Gzip => (0, 12),
            OutputCompression::Zstd => (1, 22),
        };
        if !(lo..=hi).contains(&level) {
            let name = if self == OutputCompression::Gzip {
                "gzip"
            } else {
                "zstd"
            };
            bail!("--level {level} is out of range for {name} ({lo} to {hi})");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_from_name() {
        assert_eq!(
            OutputCompression::from_file_name("a.tar.gz"),
            OutputCompression::Gzip
        );
        assert_eq!(
            OutputCompression::from_file_name("a.TGZ"),
            OutputCompression::Gzip
        );
        assert_eq!(
            OutputCompression::from_file_name("a.wsl"),
            OutputCompression::Gzip
        );
        assert_eq!(
            OutputCompression::from_file_name("a.tar.zst"),
            OutputCompression::Zstd
        );
        assert_eq!(
            OutputCompression::from_file_name("a.tar"),
            OutputCompression::None
        );
    }
}
