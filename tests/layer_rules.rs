//! The layer rules of shared/docs/layer-semantics.md, end to end: images built in code,
//! written as OCI layouts, flattened by the binary, the output read back and checked
//! (every output also passes `Listing::assert_invariants`, tests/common/listing.rs).

mod common;
use common::*;
use std::collections::BTreeMap;

fn flat(layers: Vec<Vec<Entry>>) -> BTreeMap<String, Out> {
    let dir = tempfile::tempdir().unwrap();
    let img = image(layers.iter().map(|l| layer(l.clone())).collect());
    let lay = oci_layout(dir.path(), &img.build(), "t");
    tree(&flatten_ok(&["-q", &layout_arg(&lay, "t")]))
}

fn flat_err(layers: Vec<Vec<Entry>>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let img = image(layers.iter().map(|l| layer(l.clone())).collect());
    let lay = oci_layout(dir.path(), &img.build(), "t");
    flatten_err(&[&layout_arg(&lay, "t")])
}

fn names(t: &BTreeMap<String, Out>) -> Vec<&str> {
    t.keys().map(|k| k.as_str()).collect()
}

#[test]
fn later_entry_in_the_same_layer_wins() {
    let t = flat(vec![vec![
        file("a", "first"),
        file("a", "second").mode(0o600),
    ]]);
    assert_eq!(t["a"].content, b"second");
    assert_eq!(t["a"].mode, 0o600);
}

#[test]
fn whiteout_removes_lower_subtree_but_not_same_layer_file() {
    let t = flat(vec![
        vec![
            dir("d"),
            file("d/x", "x"),
            file("keep", "k"),
            file("f", "lower"),
        ],
        vec![
            whiteout("d"),
            whiteout("f"),
            file("f", "same layer"),
            whiteout("never-existed"),
        ],
    ]);
    assert_eq!(names(&t), ["./", "f", "keep"]);
    assert_eq!(t["f"].content, b"same layer");
}

#[test]
fn opaque_marker_after_the_layers_own_children_keeps_them() {
    let t = flat(vec![
        vec![
            dir("etc"),
            dir("etc/conf.d"),
            file("etc/conf.d/old", "old"),
            file("etc/conf.d/older", ""),
        ],
        vec![
            dir("etc/conf.d").mode(0o700),
            file("etc/conf.d/new", "new"),
            opaque("etc/conf.d"),
        ],
    ]);
    assert_eq!(names(&t), ["./", "etc", "etc/conf.d", "etc/conf.d/new"]);
    assert_eq!(t["etc/conf.d"].mode, 0o700);
}

#[test]
fn dir_to_file_to_dir_across_three_layers() {
    let t = flat(vec![
        vec![dir("p"), file("p/child", "c")],
        vec![file("p", "now a file")],
        vec![dir("p").mode(0o750), file("p/again", "a")],
    ]);
    assert_eq!(names(&t), ["./", "p", "p/again"]);
    assert_eq!((t["p"].kind, t["p"].mode), ('d', 0o750));
}

#[test]
fn directory_over_directory_merges_with_upper_metadata() {
    let t = flat(vec![
        vec![dir("d").mode(0o755).owner(1, 1), file("d/lower", "l")],
        vec![dir("d").mode(0o1777).owner(2, 2), file("d/upper", "u")],
    ]);
    assert_eq!(names(&t), ["./", "d", "d/lower", "d/upper"]);
    assert_eq!((t["d"].mode, t["d"].uid, t["d"].gid), (0o1777, 2, 2));
}

#[test]
fn hardlink_to_a_lower_layer_file() {
    let t = flat(vec![
        vec![dir("bin"), file("bin/perl5.36", "perl").mode(0o755)],
        vec![hardlink("bin/perl", "bin/perl5.36")],
    ]);
    assert_eq!(content_of(&t, "bin/perl"), b"perl");
    assert_eq!(t["bin/perl"].kind, 'h');
    assert_eq!(t["bin/perl"].link, b"bin/perl5.36");
}

#[test]
fn hardlink_keeps_old_content_when_an_upper_layer_replaces_its_target() {
    let t = flat(vec![
        vec![file("a", "old"), hardlink("b", "a"), hardlink("c", "a")],
        vec![file("a", "new")],
    ]);
    assert_eq!(content_of(&t, "a"), b"new");
    assert_eq!(content_of(&t, "b"), b"old");
    assert_eq!(content_of(&t, "c"), b"old");
    // b and c still share one inode: one is the file, the other a link to it.
    let kinds: Vec<char> = ["b", "c"].iter().map(|p| t[*p].kind).collect();
    assert_eq!(kinds, ['f', 'h']);
}

#[test]
fn hardlink_whose_target_is_whited_out_becomes_the_file() {
    let t = flat(vec![
        vec![file("a", "data"), hardlink("b", "a")],
        vec![whiteout("a")],
    ]);
    assert_eq!(names(&t), ["./", "b"]);
    assert_eq!(
        (t["b"].kind, t["b"].content.as_slice()),
        ('f', &b"data"[..])
    );
}

#[test]
fn hardlink_to_a_missing_target_is_refused_with_its_name() {
    let err = flat_err(vec![vec![hardlink("b", "nowhere")]]);
    assert!(err.contains("\"b\"") && err.contains("nowhere"), "{err}");
    assert!(err.contains("layer 1/1"), "{err}");
}

#[test]
fn ids_above_the_octal_limit_survive() {
    let t = flat(vec![vec![file("big", "x").owner(3_000_000_000, 2_097_152)]]);
    assert_eq!((t["big"].uid, t["big"].gid), (3_000_000_000, 2_097_152));
}

#[test]
fn security_capability_and_other_xattrs_survive() {
    let cap = b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    let t = flat(vec![vec![file("usr/bin/ping", "ping")
        .mode(0o755)
        .xattr("security.capability", cap)
        .xattr("user.comment", b"hello")]]);
    assert_eq!(
        t["usr/bin/ping"].xattrs,
        [
            ("security.capability".to_string(), cap.to_vec()),
            ("user.comment".to_string(), b"hello".to_vec())
        ]
    );
}

#[test]
fn names_longer_than_255_bytes_pax_and_gnu() {
    let long_a = format!("deep/{}/file", "a".repeat(300));
    let long_b = format!("deep/{}/other", "b".repeat(200));
    let link = format!("link-{}", "c".repeat(150));
    let t = flat(vec![vec![
        file(&long_a, "pax"),
        file(&long_b, "gnu").gnu_long_names(),
        symlink(&link, &long_a),
    ]]);
    assert_eq!(t[&long_a].content, b"pax");
    assert_eq!(t[&long_b].content, b"gnu");
    assert_eq!(t[&link].link, long_a.as_bytes());
}

#[test]
fn non_utf8_names_survive_byte_for_byte() {
    let short = b"caf\xe9".to_vec();
    let long = [&b"dir/"[..], &[0xff; 150][..], b"/\xfe\xfdname"].concat();
    let t = flat(vec![vec![
        file(&short, b"s"),
        file(&long, b"l").gnu_long_names(),
    ]]);
    let all: Vec<&Out> = t.values().collect();
    assert!(all.iter().any(|e| e.path == short && e.content == b"s"));
    assert!(all.iter().any(|e| e.path == long && e.content == b"l"));
}

#[test]
fn fifos_and_device_nodes() {
    let t = flat(vec![vec![
        dir("dev"),
        chardev("dev/null", 1, 3),
        blockdev("dev/sda", 8, 0),
        fifo("run-fifo"),
    ]]);
    assert_eq!((t["dev/null"].kind, t["dev/null"].dev), ('c', (1, 3)));
    assert_eq!((t["dev/sda"].kind, t["dev/sda"].dev), ('b', (8, 0)));
    assert_eq!(t["run-fifo"].kind, 'p');
}

#[test]
fn absolute_and_unclean_names_are_normalised() {
    let t = flat(vec![vec![
        file("/etc/abs", "a"),
        file("./x//y/", "b"),
        file("./z", "c"),
    ]]);
    assert_eq!(names(&t), ["./", "etc", "etc/abs", "x", "x/y", "z"]);
}

#[test]
fn dotdot_names_are_refused_naming_layer_and_entry() {
    // Only a `..` that climbs above the root is hostile; `ok/..` is the root itself.
    for bad in ["../etc/passwd", "a/../../b", "ok/../.."] {
        let err = flat_err(vec![vec![file("fine", ""), file(bad, "evil")]]);
        assert!(err.contains(bad) && err.contains(".."), "{bad}: {err}");
    }
    let err = flat_err(vec![vec![file("a", ""), hardlink("b", "../a")]]);
    assert!(err.contains("'..'"), "{err}");
}

#[test]
fn aufs_metadata_never_reaches_the_output() {
    let t = flat(vec![vec![
        dir(".wh..wh.plnk"),
        file(".wh..wh.plnk/123.456", ""),
        file(".wh..wh.aufs", ""),
        dir(".wh..wh.orph"),
        file("real", "r"),
    ]]);
    assert_eq!(names(&t), ["./", "real"]);
}

#[test]
fn bare_whiteout_is_refused() {
    let err = flat_err(vec![vec![file("d/.wh.", "")]]);
    assert!(err.contains(".wh."), "{err}");
}

#[test]
fn implicit_parents_are_root_owned_0755() {
    let t = flat(vec![vec![file("a/b/c", "x").owner(5, 5)]]);
    for p in ["a", "a/b"] {
        assert_eq!(
            (t[p].kind, t[p].mode, t[p].uid, t[p].gid),
            ('d', 0o755, 0, 0),
            "{p}"
        );
    }
}

#[test]
fn entry_below_a_lower_layer_symlink_replaces_it_with_a_directory() {
    let t = flat(vec![
        vec![dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib")],
        vec![file("lib/x.so", "x")],
    ]);
    assert_eq!(t["lib"].kind, 'd');
    assert_eq!(t["lib/x.so"].content, b"x");
}

#[test]
fn symlink_loops_are_kept_verbatim_and_never_followed() {
    // Loops, a self-link, a hardlink to a looping link, and a whiteout through a loop: the
    // layer rules work on names, so nothing here may hang or escape.
    let t = flat(vec![
        vec![
            symlink("a", "b"),
            symlink("b", "a"),
            symlink("self", "self"),
            symlink("up", "../../up"),
            hardlink("a-again", "a"),
        ],
        vec![whiteout("a/x"), file("b/new", "n")],
    ]);
    // Whiting out something absent is a no-op, even through a link.
    assert_eq!(
        (t["a"].kind, t["a"].link.as_slice()),
        ('l', b"b".as_slice())
    );
    // A new entry below a lower layer's symlink: overlay makes the path a directory.
    assert_eq!(t["b"].kind, 'd');
    assert_eq!(t["b/new"].content, b"n");
    assert_eq!(
        (t["self"].kind, t["self"].link.as_slice()),
        ('l', b"self".as_slice())
    );
    assert_eq!(t["up"].link, b"../../up");
    // A hardlink to a symlink stays one, after it (assert_invariants saw to the order).
    assert_eq!(
        (t["a-again"].kind, t["a-again"].link.as_slice()),
        ('h', b"a".as_slice())
    );
}

#[test]
fn modes_with_special_bits_and_mtimes_survive() {
    let t = flat(vec![vec![
        file("suid", "").mode(0o4755),
        file("sgid", "").mode(0o2755),
        dir("sticky").mode(0o1777),
    ]]);
    assert_eq!(t["suid"].mode, 0o4755);
    assert_eq!(t["sgid"].mode, 0o2755);
    assert_eq!(t["sticky"].mode, 0o1777);
    assert_eq!(t["suid"].mtime, 1_700_000_000);
}

#[test]
fn output_order_directories_first_and_links_after_targets() {
    let dir_ = tempfile::tempdir().unwrap();
    let img = image(vec![
        layer(vec![
            dir("z"),
            file("z/file", "1"),
            hardlink("a-link", "z/file"),
            symlink("s", "z"),
        ]),
        layer(vec![file("b", "2"), dir("y")]),
    ]);
    let lay = oci_layout(dir_.path(), &img.build(), "t");
    let bytes = flatten_ok(&["-q", &layout_arg(&lay, "t")]);
    Listing::parse(&bytes).assert_invariants();
    let entries = list(&bytes);
    let order: Vec<String> = entries.iter().map(|e| e.name()).collect();
    // Regular files come after the rest, two layers interleaved by how far into its layer's
    // tar each file ends (docs/design.md): `b` ends 1 KiB into its layer, `z/file` 1.5 KiB.
    assert_eq!(order, ["./", "s", "y", "z", "b", "z/file", "a-link"]);
}

#[test]
fn same_image_gives_the_same_bytes() {
    let layers = [
        vec![dir("d"), file("d/a", "a"), hardlink("h", "d/a")],
        vec![whiteout("d/a"), file("n", "n")],
    ];
    let dir_ = tempfile::tempdir().unwrap();
    let img = image(layers.iter().map(|l| layer(l.clone())).collect());
    let lay = oci_layout(dir_.path(), &img.build(), "t");
    let a = flatten_ok(&["-q", &layout_arg(&lay, "t")]);
    let b = flatten_ok(&["-q", "-j", "1", &layout_arg(&lay, "t")]);
    assert_eq!(a, b);
}
