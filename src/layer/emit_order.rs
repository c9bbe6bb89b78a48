//! The order in which the emit pass writes the regular files: two layers read at once.
//!
//! Every regular file of the final tree is written once, after all directories, and its other
//! paths (hardlinks) right after it, so the order *among* regular files is free. It used to be
//! layer by layer, which left one core idle in the emit pass: a layer's reader could only run
//! a few MiB ahead of the writer, so the next layer's inflate waited for the current one to be
//! written. Now the files of [`LANES`] layers are interleaved in proportion to how far each
//! layer must be read to reach them, so that the readers of two layers inflate side by side.
//!
//! The rule uses only what the index pass recorded (how far into its layer's uncompressed tar
//! each file ends), never timing, thread counts or buffer sizes, so the same image always
//! gives the same bytes:
//!
//! 1. Each layer that still holds files is "read" on a virtual timeline measured in bytes of
//!    uncompressed tar. Its extent is the end of its last surviving file. Taken bottom to top,
//!    each layer goes to the lane that becomes free first (the lowest lane on a tie) and starts
//!    there when the layer before on that lane ends: a list schedule on [`LANES`] lanes.
//! 2. A file's key is its layer's start plus where the file ends in that layer.
//! 3. Files are written by key; equal keys by layer, bottom first. Within a layer keys
//!    increase, so each layer is still read front to back.
//!
//! At any key at most [`LANES`] layers are being read (a lane holds one layer at a time), so
//! the emit pass needs only that many readers, plus one opened ahead.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::iter::Peekable;

/// Layers read at once by the emit pass. A constant rather than `--jobs`: the output order
/// follows from it, and must not change with the machine or a flag. Two keeps both cores of
/// a small machine inflating; on more cores, compression and the index pass use the rest.
pub const LANES: usize = 2;

/// A stretch of at least this many bytes between two surviving files (what a later layer
/// deleted) counts as this many: the emit pass jumps over most of it from a resume point
/// (`super::inflate`), so reading past it costs about as much as reaching the next point's
/// entry does.
pub const JUMPED: u64 = 8 << 20;

/// A layer whose reading costs at least this much is read by two readers at once, one from
/// its start and one from its middle, so that one large layer keeps both cores inflating.
pub const SPLIT_MIN: u64 = 64 << 20;

/// How far reading a layer has come at each of its surviving files (`(ordinal, end, size)`
/// in tar order), in bytes of tar it inflates: each file's header and content, plus the
/// stretch before it, counted as at most [`JUMPED`]. Only the files decide it, never where
/// resume points happened to fall, so the order stays a function of the image.
pub fn reach(files: impl Iterator<Item = (u64, u64, u64)>) -> impl Iterator<Item = (u64, u64)> {
    let (mut last_end, mut reached) = (0u64, 0u64);
    files.map(move |(ordinal, end, size)| {
        let gap = end.saturating_sub(last_end);
        let own = (size.div_ceil(512) * 512 + 512).min(gap);
        reached = reached.saturating_add(own + (gap - own).min(JUMPED));
        last_end = end;
        (ordinal, reached)
    })
}

/// One reader's share of a layer: the ordinals of its files (both ends included), how far
/// reading the layer has come where the share starts, and what reading it costs, by
/// [`reach`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub ordinals: (u64, u64),
    pub before: u64,
    pub cost: u64,
}

/// How a layer (its surviving files, as for [`reach`]) is read: whole, or, when it is
/// `splittable` and costs at least [`SPLIT_MIN`] to read, in two halves, the second from
/// the first file (after the first file) with which reading passes half its cost.
pub fn spans(files: impl Iterator<Item = (u64, u64, u64)> + Clone, splittable: bool) -> Vec<Span> {
    let total = reach(files.clone()).last().map_or(0, |(_, r)| r);
    let whole = vec![Span {
        ordinals: (0, u64::MAX),
        before: 0,
        cost: total,
    }];
    if !splittable || total < SPLIT_MIN {
        return whole;
    }
    let mut before = 0;
    for (k, (ordinal, reached)) in reach(files).enumerate() {
        if k > 0 && reached > total / 2 {
            return vec![
                Span {
                    ordinals: (0, ordinal - 1),
                    before: 0,
                    cost: before,
                },
                Span {
                    ordinals: (ordinal, u64::MAX),
                    before,
                    cost: total - before,
                },
            ];
        }
        before = reached;
    }
    whole
}

/// Where each layer starts on the virtual timeline, given how far each must be read
/// (`extents`, bottom to top).
pub fn starts(extents: &[u64]) -> Vec<u64> {
    let mut free = [0u64; LANES];
    extents
        .iter()
        .map(|&extent| {
            let lane = (0..LANES)
                .min_by_key(|&lane| (free[lane], lane))
                .expect("at least one lane");
            let start = free[lane];
            free[lane] = start.saturating_add(extent);
            start
        })
        .collect()
}

/// The files of several layers in emit order: each item is the layer's position in the list
/// given to [`Merge::new`], the file, and whether it is that layer's last.
pub struct Merge<I: Iterator> {
    layers: Vec<(u64, Peekable<I>)>,
    /// (key, layer position) of each layer's next file.
    heads: BinaryHeap<Reverse<(u64, usize)>>,
    end_of: fn(&I::Item) -> u64,
}

impl<I: Iterator> Merge<I> {
    /// `layers`: each layer's start (from [`starts`]) and its files in tar order; `end_of`:
    /// where a file ends in its layer.
    pub fn new(layers: Vec<(u64, I)>, end_of: fn(&I::Item) -> u64) -> Merge<I> {
        let mut merge = Merge {
            layers: layers
                .into_iter()
                .map(|(start, files)| (start, files.peekable()))
                .collect(),
            heads: BinaryHeap::new(),
            end_of,
        };
        for position in 0..merge.layers.len() {
            merge.push_head(position);
        }
        merge
    }

    fn push_head(&mut self, position: usize) {
        let (start, files) = &mut self.layers[position];
        if let Some(file) = files.peek() {
            let key = start.saturating_add((self.end_of)(file));
            self.heads.push(Reverse((key, position)));
        }
    }
}

impl<I: Iterator> Iterator for Merge<I> {
    type Item = (usize, I::Item, bool);

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((_, position)) = self.heads.pop()?;
        let file = self.layers[position].1.next().expect("a head was pushed");
        self.push_head(position);
        let last = self.layers[position].1.peek().is_none();
        Some((position, file, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_counts_long_deleted_stretches_as_jumped() {
        const M: u64 = 1 << 20;
        // A 1000-byte file, then one whose 1 MiB follows 100 MiB of deleted entries, then one
        // right after it, then a 100 MiB file with nothing deleted before it.
        let files = [
            (0, 1512, 1000),
            (9, 101 * M + 2048, M),
            (10, 101 * M + 4096, 1024),
            (11, 201 * M + 4608, 100 * M),
        ];
        let reached: Vec<u64> = reach(files.into_iter()).map(|(_, r)| r).collect();
        let second = 1512 + (M + 512) + JUMPED;
        assert_eq!(
            reached,
            [1512, second, second + 2048, second + 2048 + 100 * M + 512]
        );
    }

    #[test]
    fn a_layer_splits_where_half_its_reading_is_done() {
        const M: u64 = 1 << 20;
        let files =
            |count: u64, each: u64| (0..count).map(move |i| (i, (i + 1) * (each + 512), each));
        let split = |files, splittable| {
            let spans = spans(files, splittable);
            (spans.len() == 2).then(|| spans[1].ordinals.0)
        };
        // 100 files of 1 MiB: reading is exactly half done after ordinal 49, so the second
        // half starts with ordinal 50.
        assert_eq!(split(files(100, M), true), Some(50));
        let half = 50 * (M + 512);
        assert_eq!(
            spans(files(100, M), true),
            [
                Span {
                    ordinals: (0, 49),
                    before: 0,
                    cost: half
                },
                Span {
                    ordinals: (50, u64::MAX),
                    before: half,
                    cost: half
                }
            ]
        );
        assert_eq!(split(files(100, M), false), None, "not splittable");
        assert_eq!(split(files(10, M), true), None, "below SPLIT_MIN");
        // One huge file cannot be split.
        assert_eq!(split(files(1, 200 * M), true), None);
    }

    /// (layer position, end, last of its layer) of each file in emit order, each layer's
    /// extent being its last file's end.
    fn merged(layers: &[&[u64]]) -> Vec<(usize, u64, bool)> {
        let extents: Vec<u64> = layers
            .iter()
            .map(|l| l.last().copied().unwrap_or(0))
            .collect();
        let starts = starts(&extents);
        Merge::new(
            layers
                .iter()
                .zip(&starts)
                .map(|(l, s)| (*s, l.iter().copied()))
                .collect(),
            |end| *end,
        )
        .collect()
    }

    /// (layer position, end) of each file in emit order.
    fn order(layers: &[&[u64]]) -> Vec<(usize, u64)> {
        merged(layers)
            .into_iter()
            .map(|(position, end, _)| (position, end))
            .collect()
    }

    #[test]
    fn list_schedule_on_two_lanes() {
        // 0 and 1 start together; 2 follows the shorter (0), 3 the one that frees next (1).
        assert_eq!(starts(&[100, 300, 50, 10]), [0, 0, 100, 150]);
        // A tie goes to the lower lane.
        assert_eq!(starts(&[100, 100, 7]), [0, 0, 100]);
        assert_eq!(starts(&[]), Vec::<u64>::new());
        assert_eq!(starts(&[u64::MAX, 5, 6]), [0, 0, 5]);
    }

    #[test]
    fn two_layers_interleave_by_how_far_each_is_read() {
        assert_eq!(
            order(&[&[10, 20, 30], &[15, 30, 45]]),
            [(0, 10), (1, 15), (0, 20), (0, 30), (1, 30), (1, 45)]
        );
    }

    #[test]
    fn a_third_layer_waits_for_a_free_lane() {
        // Layer 2 starts when layer 0 ends (at 20) and shares the time with layer 1's rest.
        assert_eq!(
            order(&[&[10, 20], &[25, 50, 75], &[5, 40]]),
            [(0, 10), (0, 20), (1, 25), (2, 5), (1, 50), (2, 40), (1, 75)]
        );
    }

    #[test]
    fn each_layer_stays_in_tar_order_and_the_last_file_is_marked() {
        let layers: [&[u64]; 3] = [&[1, 2, 900], &[3, 4], &[500, 501, 502, 503]];
        let items = merged(&layers);
        assert_eq!(items.len(), 9);
        for (position, files) in layers.iter().enumerate() {
            let seen: Vec<u64> = items
                .iter()
                .filter(|i| i.0 == position)
                .map(|i| i.1)
                .collect();
            assert_eq!(seen, *files);
            let lasts: Vec<bool> = items
                .iter()
                .filter(|i| i.0 == position)
                .map(|i| i.2)
                .collect();
            let mut expected = vec![false; files.len()];
            *expected.last_mut().unwrap() = true;
            assert_eq!(lasts, expected);
        }
    }
}
