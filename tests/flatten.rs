//! The layer rules of layer-semantics.md, one test per rule and per hard case. Each image is
//! built in code, written as an OCI layout, flattened by the binary, and its output read back;
//! every successful output also passes `Listing::assert_invariants` (each path once, clean
//! names, parents first, non-files before files, hardlinks after their targets, no whiteouts,
//! no uname/gname).

mod common;
use common::*;

fn l(entries: Vec<Entry>) -> Layer {
    layer(entries)
}

// ------------------------------------------------------------------------------ rule 1

#[test]
fn later_entry_in_the_same_layer_wins() {
    let out = flatten(vec![l(vec![
        file("a", "first"),
        file("a", "second").mode(0o600),
        dir("d").mode(0o755),
        dir("d").mode(0o750).owner(5, 6),
        file("x", "a file first"),
        dir("x"),
        file("x/y", "then a directory"),
    ])]);
    assert_eq!(out.get("a").content, b"second");
    assert_eq!(out.get("a").mode, 0o600);
    assert_eq!(out.get("d").kind, OutKind::Dir);
    assert_eq!(
        (out.get("d").mode, out.get("d").uid, out.get("d").gid),
        (0o750, 5, 6)
    );
    assert_eq!(out.get("x").kind, OutKind::Dir);
    assert_eq!(out.get("x/y").content, b"then a directory");
    assert_eq!(out.sorted_paths(), ["a", "d", "x", "x/y"]);
}

#[test]
fn files_of_one_layer_keep_their_tar_order() {
    let out = flatten(vec![l(vec![
        file("zz", "1"),
        file("aa", "2"),
        file("mm", "3"),
    ])]);
    let files: Vec<String> = out
        .entries
        .iter()
        .filter(|e| e.kind == OutKind::File)
        .map(OutEntry::path_str)
        .collect();
    assert_eq!(files, ["zz", "aa", "mm"]);
}

#[test]
fn empty_layers_are_fine() {
    let out = flatten(vec![
        l(vec![file("a", "x")]),
        l(vec![]),
        l(vec![]).uncompressed(),
    ]);
    assert_eq!(out.sorted_paths(), ["a"]);
}

// ------------------------------------------------------------------------------ rule 2

#[test]
fn whiteout_removes_lower_path_and_subtree_but_same_layer_file_stays() {
    let out = flatten(vec![
        l(vec![
            dir("d"),
            file("d/x", "x"),
            dir("d/sub"),
            file("d/sub/y", "y"),
            file("f", "lower f"),
            file("g", "lower g"),
            file("keep", "k"),
        ]),
        l(vec![
            whiteout("d"),
            // the same layer's file stays, before or after its whiteout
            file("f", "upper f"),
            whiteout("f"),
            whiteout("g"),
            file("g", "upper g"),
            whiteout("never-existed"),
        ]),
    ]);
    assert_eq!(out.sorted_paths(), ["f", "g", "keep"]);
    assert_eq!(out.get("f").content, b"upper f");
    assert_eq!(out.get("g").content, b"upper g");
}

#[test]
fn whiteout_then_same_layer_directory_keeps_only_the_new_children() {
    let out = flatten(vec![
        l(vec![
            dir("d"),
            file("d/old", "old"),
            dir("d/olddir"),
            file("d/olddir/z", "z"),
        ]),
        l(vec![
            whiteout("d"),
            dir("d").mode(0o700),
            file("d/new", "new"),
        ]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "d/new"]);
    assert_eq!(out.get("d").mode, 0o700);
}

#[test]
fn whiteout_of_a_directory_with_a_same_layer_child_and_no_directory_entry() {
    let out = flatten(vec![
        l(vec![dir("d").mode(0o700), file("d/x", "x")]),
        l(vec![whiteout("d"), file("d/y", "y")]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "d/y"]);
    assert_eq!(out.get("d").kind, OutKind::Dir);
}

#[test]
fn whiteout_only_reaches_the_layers_below() {
    // layer 3 re-creates what layer 2 whited out
    let out = flatten(vec![
        l(vec![file("a", "1")]),
        l(vec![whiteout("a")]),
        l(vec![file("a", "3")]),
    ]);
    assert_eq!(out.get("a").content, b"3");
}

#[test]
fn whiteout_with_a_long_name_and_a_non_utf8_name() {
    let long_dir = format!("{}/{}", "d".repeat(120), "e".repeat(120));
    let long_file = format!("{long_dir}/victim-with-a-long-name");
    let out = flatten(vec![
        l(vec![
            file(&long_file, "gone"),
            file(format!("{long_dir}/stays"), "here"),
            file(b"caf\xe9".as_slice(), "gone too"),
        ]),
        l(vec![
            whiteout(&long_file),
            file(b".wh.caf\xe9".as_slice(), ""),
        ]),
    ]);
    out.assert_absent(&long_file);
    out.assert_absent(b"caf\xe9");
    assert_eq!(out.get(format!("{long_dir}/stays")).content, b"here");
}

// ------------------------------------------------------------------------------ rule 3

#[test]
fn opaque_marker_after_the_layers_own_children_keeps_them_and_hides_lower_ones() {
    let out = flatten(vec![
        l(vec![
            dir("d"),
            file("d/old", "old"),
            dir("d/olddir"),
            file("d/olddir/z", "z"),
            file("d/both", "lower"),
            file("other", "o"),
        ]),
        l(vec![
            dir("d").mode(0o700),
            file("d/new", "new"),
            dir("d/newdir"),
            file("d/newdir/n", "n"),
            file("d/both", "upper"),
            opaque("d"), // the marker comes last
        ]),
    ]);
    assert_eq!(
        out.sorted_paths(),
        ["d", "d/both", "d/new", "d/newdir", "d/newdir/n", "other"]
    );
    assert_eq!(out.get("d/both").content, b"upper");
    assert_eq!(out.get("d").mode, 0o700);
}

#[test]
fn opaque_marker_before_the_layers_own_children() {
    let out = flatten(vec![
        l(vec![dir("d"), file("d/old", "old")]),
        l(vec![dir("d"), opaque("d"), file("d/new", "new")]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "d/new"]);
}

#[test]
fn opaque_marker_without_a_directory_entry_empties_the_directory() {
    let out = flatten(vec![
        l(vec![
            dir("e").mode(0o711),
            file("e/old", "old"),
            dir("e/deep"),
            file("e/deep/x", "x"),
        ]),
        l(vec![opaque("e")]),
    ]);
    assert_eq!(out.sorted_paths(), ["e"]);
    assert_eq!(out.get("e").kind, OutKind::Dir);
}

#[test]
fn opaque_marker_at_the_root_hides_every_lower_entry() {
    let out = flatten(vec![
        l(vec![file("a", "a"), dir("d"), file("d/x", "x")]),
        l(vec![file("b", "b"), opaque("")]),
    ]);
    assert_eq!(out.sorted_paths(), ["b"]);
}

#[test]
fn opaque_marker_on_a_directory_new_in_its_layer() {
    let out = flatten(vec![
        l(vec![file("x", "x")]),
        l(vec![dir("n"), opaque("n"), file("n/a", "a")]),
    ]);
    assert_eq!(out.sorted_paths(), ["n", "n/a", "x"]);
}

// ------------------------------------------------------------------------------ rule 4

#[test]
fn directory_then_file_then_directory_across_three_layers() {
    let out = flatten(vec![
        l(vec![
            dir("p"),
            file("p/a", "a"),
            dir("p/sub"),
            file("p/sub/b", "b"),
        ]),
        l(vec![file("p", "now a file")]),
        l(vec![dir("p").mode(0o700), file("p/c", "c")]),
    ]);
    assert_eq!(out.sorted_paths(), ["p", "p/c"]);
    assert_eq!(out.get("p").kind, OutKind::Dir);
    assert_eq!(out.get("p").mode, 0o700);
}

#[test]
fn file_replaces_a_directory_and_its_subtree() {
    let out = flatten(vec![
        l(vec![
            dir("p"),
            file("p/a", "a"),
            dir("p/sub"),
            file("p/sub/b", "b"),
        ]),
        l(vec![file("p", "a file now").mode(0o640)]),
    ]);
    assert_eq!(out.sorted_paths(), ["p"]);
    assert_eq!(out.get("p").kind, OutKind::File);
    assert_eq!(out.get("p").content, b"a file now");
}

#[test]
fn symlink_replaces_a_directory_and_its_subtree() {
    let out = flatten(vec![
        l(vec![dir("d"), file("d/x", "x"), dir("elsewhere")]),
        l(vec![symlink("d", "elsewhere")]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "elsewhere"]);
    assert_eq!(out.get("d").kind, OutKind::Symlink);
    assert_eq!(out.get("d").link.as_deref(), Some(b"elsewhere".as_slice()));
}

#[test]
fn hardlink_replaces_a_directory_and_its_subtree() {
    let out = flatten(vec![
        l(vec![file("f", "target"), dir("d"), file("d/x", "x")]),
        l(vec![hardlink("d", "f")]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "f"]);
    assert_eq!(out.content("d"), b"target");
}

#[test]
fn directory_over_directory_merges_with_upper_metadata() {
    let out = flatten(vec![
        l(vec![
            dir("d")
                .mode(0o755)
                .mtime(1_000_000_000)
                .xattr("user.lower", "1"),
            file("d/a", "a"),
        ]),
        l(vec![
            dir("d")
                .mode(0o700)
                .owner(1000, 1001)
                .mtime(1_600_000_000)
                .xattr("user.upper", "2"),
            file("d/b", "b"),
        ]),
    ]);
    assert_eq!(out.sorted_paths(), ["d", "d/a", "d/b"]);
    let d = out.get("d");
    assert_eq!(
        (d.mode, d.uid, d.gid, d.mtime),
        (0o700, 1000, 1001, 1_600_000_000)
    );
    assert_eq!(
        d.xattrs.get(b"user.upper".as_slice()).map(Vec::as_slice),
        Some(b"2".as_slice())
    );
    assert!(
        !d.xattrs.contains_key(b"user.lower".as_slice()),
        "upper metadata wins whole"
    );
}

// ------------------------------------------------------------------------------ rule 5

#[test]
fn hardlink_to_a_lower_layer_file() {
    let out = flatten(vec![
        l(vec![dir("bin"), file("bin/busybox", "BUSYBOX").mode(0o755)]),
        l(vec![hardlink("bin/sh", "bin/busybox")]),
    ]);
    assert_eq!(out.content("bin/sh"), b"BUSYBOX");
    assert_eq!(out.content("bin/busybox"), b"BUSYBOX");
}

#[test]
fn hardlink_keeps_the_old_content_when_the_same_layer_replaces_its_target() {
    let out = flatten(vec![l(vec![
        file("a", "v1"),
        hardlink("b", "a"),
        file("a", "v2"),
    ])]);
    assert_eq!(out.content("a"), b"v2");
    assert_eq!(out.content("b"), b"v1");
}

#[test]
fn hardlink_names_the_target_as_the_layers_below_left_it() {
    let out = flatten(vec![
        l(vec![file("a", "v1")]),
        l(vec![file("a", "v2").mode(0o600)]),
        l(vec![hardlink("b", "a")]),
    ]);
    assert_eq!(out.content("a"), b"v2");
    assert_eq!(out.content("b"), b"v2");
}

#[test]
fn hardlink_chain_in_one_layer() {
    let out = flatten(vec![l(vec![
        file("a", "shared"),
        hardlink("b", "a"),
        hardlink("c", "b"),
    ])]);
    for p in ["a", "b", "c"] {
        assert_eq!(out.content(p), b"shared", "{p}");
    }
}

#[test]
fn hardlink_comes_after_its_target_from_a_lower_layer() {
    // A top-down writer meets the link (upper layer) before its target (lower layer), and a
    // sorted writer meets "a/link" before "z/target".
    let out = flatten(vec![
        l(vec![dir("z"), file("z/target", "T")]),
        l(vec![dir("a"), hardlink("a/link", "z/target")]),
    ]);
    assert_eq!(out.content("a/link"), b"T");
}

#[test]
fn hardlink_keeps_the_old_content_when_an_upper_layer_replaces_its_target() {
    let out = flatten(vec![
        l(vec![file("a", "v1"), hardlink("b", "a")]),
        l(vec![hardlink("c", "a")]),
        l(vec![file("a", "v3")]),
    ]);
    assert_eq!(out.content("a"), b"v3");
    assert_eq!(out.content("b"), b"v1");
    assert_eq!(out.content("c"), b"v1");
    for p in ["b", "c"] {
        let e = out.get(p);
        if e.kind == OutKind::Hardlink {
            assert_ne!(
                e.link.as_deref(),
                Some(b"a".as_slice()),
                "{p} must not name the new a"
            );
        }
    }
}

#[test]
fn hardlink_whose_target_was_whited_out_becomes_a_file() {
    let out = flatten(vec![
        l(vec![
            file("a", "data").mode(0o640).owner(7, 8),
            hardlink("b", "a"),
        ]),
        l(vec![whiteout("a")]),
    ]);
    out.assert_absent("a");
    let b = out.get("b");
    assert_eq!(b.kind, OutKind::File);
    assert_eq!(b.content, b"data");
    // the inode's metadata, not the link entry's
    assert_eq!((b.mode, b.uid, b.gid), (0o640, 7, 8));
}

#[test]
fn several_hardlinks_to_a_whited_out_target_share_its_content() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let out = flatten(vec![
        l(vec![
            file("z", &big),
            hardlink("a", "z"),
            hardlink("m", "z"),
            dir("sub"),
            hardlink("sub/q", "a"),
        ]),
        l(vec![whiteout("z"), file("other", "o")]),
        l(vec![file("top", "t")]),
    ]);
    out.assert_absent("z");
    for p in ["a", "m", "sub/q"] {
        assert_eq!(out.content(p), big, "{p}");
    }
}

#[test]
fn large_hardlinked_file_keeps_its_old_content_across_layers() {
    let v1: Vec<u8> = (0..500_000u32).map(|i| (i % 241) as u8).collect();
    let v2: Vec<u8> = (0..400_000u32).map(|i| (i % 239) as u8).collect();
    let out = flatten(vec![
        l(vec![
            dir("usr"),
            file("usr/big", &v1),
            hardlink("usr/link", "usr/big"),
        ]),
        l(vec![file("usr/big", &v2)]).zstd(),
    ]);
    assert_eq!(out.content("usr/big"), v2);
    assert_eq!(out.content("usr/link"), v1);
}

#[test]
fn hardlink_whose_target_became_a_directory() {
    let out = flatten(vec![
        l(vec![file("a", "x"), hardlink("b", "a")]),
        l(vec![dir("a"), file("a/y", "y")]),
    ]);
    assert_eq!(out.get("a").kind, OutKind::Dir);
    assert_eq!(out.content("b"), b"x");
}

#[test]
fn hardlink_to_a_missing_target_is_refused() {
    let r = flatten_fails(vec![l(vec![
        dir("usr"),
        hardlink("usr/dangling-link", "usr/nowhere"),
    ])]);
    r.assert_stderr_has_all(&["dangling-link"]);
}

// ------------------------------------------------------------------------------ rule 6

#[test]
fn ids_above_2097151_are_preserved() {
    let out = flatten(vec![l(vec![
        file("pax-ids", "p").owner(3_000_000, 4_294_967_294),
        file("base256-ids", "b")
            .owner(2_097_152, 100_000_000)
            .base256_ids(),
        dir("d").owner(16_777_216, 16_777_217),
        file("nobody", "n").owner(65534, 65534),
    ])]);
    let ids = |p: &str| (out.get(p).uid, out.get(p).gid);
    assert_eq!(ids("pax-ids"), (3_000_000, 4_294_967_294));
    assert_eq!(ids("base256-ids"), (2_097_152, 100_000_000));
    assert_eq!(ids("d"), (16_777_216, 16_777_217));
    assert_eq!(ids("nobody"), (65534, 65534));
}

#[test]
fn security_capability_and_other_xattrs_are_preserved() {
    // vfs_cap_data revision 2: magic 0x02000001, permitted CAP_NET_RAW (bit 13), effective.
    let cap: Vec<u8> = vec![
        0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let out = flatten(vec![l(vec![
        dir("bin").xattr("user.dir", "on a dir"),
        file("bin/ping", "ELF")
            .mode(0o755)
            .xattr("security.capability", &cap)
            .xattr("user.binary", [0u8, 0xff, b'=', b'\n', 0x80]),
    ])]);
    let ping = out.get("bin/ping");
    assert_eq!(
        ping.xattrs.get(b"security.capability".as_slice()),
        Some(&cap)
    );
    assert_eq!(
        ping.xattrs
            .get(b"user.binary".as_slice())
            .map(Vec::as_slice),
        Some([0u8, 0xff, b'=', b'\n', 0x80].as_slice())
    );
    assert_eq!(
        out.get("bin")
            .xattrs
            .get(b"user.dir".as_slice())
            .map(Vec::as_slice),
        Some(b"on a dir".as_slice())
    );
    // written the PAX way
    assert!(ping
        .pax
        .iter()
        .any(|(k, _)| k == b"SCHILY.xattr.security.capability"));
}

#[test]
fn special_mode_bits_and_mtime_are_preserved() {
    let out = flatten(vec![l(vec![
        dir("tmp").mode(0o1777),
        dir("shared").mode(0o2775).owner(0, 50),
        dir("usr").mtime(1_234_567_890),
        file("usr/su", "su").mode(0o4755),
        file("usr/wall", "wall").mode(0o2755).owner(0, 5),
        file("usr/odd", "odd").mode(0o7000),
        file("usr/old", "old").mtime(0),
        file("usr/future", "future").mtime(4_102_444_800),
    ])]);
    assert_eq!(out.get("tmp").mode, 0o1777);
    assert_eq!(out.get("shared").mode, 0o2775);
    assert_eq!(out.get("usr/su").mode, 0o4755);
    assert_eq!(out.get("usr/wall").mode, 0o2755);
    assert_eq!(out.get("usr/odd").mode, 0o7000);
    assert_eq!(out.get("usr").mtime, 1_234_567_890);
    assert_eq!(out.get("usr/su").mtime, DEFAULT_MTIME);
    assert_eq!(out.get("usr/old").mtime, 0);
    assert_eq!(out.get("usr/future").mtime, 4_102_444_800);
}

#[test]
fn fifos_and_devices_are_preserved() {
    let out = flatten(vec![l(vec![
        dir("dev"),
        chardev("dev/null", 1, 3),
        chardev("dev/big", 511, 1_048_575).mode(0o600),
        blockdev("dev/sda", 8, 0),
        dir("run"),
        fifo("run/initctl").mode(0o600),
    ])]);
    let e = out.get("dev/null");
    assert_eq!(
        (e.kind, e.dev, e.mode),
        (OutKind::Char, Some((1, 3)), 0o666)
    );
    let e = out.get("dev/big");
    assert_eq!(
        (e.kind, e.dev, e.mode),
        (OutKind::Char, Some((511, 1_048_575)), 0o600)
    );
    let e = out.get("dev/sda");
    assert_eq!(
        (e.kind, e.dev, e.mode),
        (OutKind::Block, Some((8, 0)), 0o660)
    );
    let e = out.get("run/initctl");
    assert_eq!((e.kind, e.mode), (OutKind::Fifo, 0o600));
}

#[test]
fn symlink_targets_are_kept_verbatim() {
    let out = flatten(vec![l(vec![
        symlink("bin", "usr/bin"),
        dir("etc"),
        symlink("etc/mtab", "/proc/self/mounts"),
        symlink("etc/up", "../../../../outside"),
        symlink("etc/dot", "./x//y/"),
        symlink("etc/bytes", b"\xff\xfe target".as_slice()),
        symlink("etc/dangling", "nothing-here"),
    ])]);
    let link = |p: &str| out.get(p).link.clone().unwrap();
    assert_eq!(link("bin"), b"usr/bin");
    assert_eq!(link("etc/mtab"), b"/proc/self/mounts");
    assert_eq!(link("etc/up"), b"../../../../outside");
    assert_eq!(link("etc/dot"), b"./x//y/");
    assert_eq!(link("etc/bytes"), b"\xff\xfe target");
    assert_eq!(link("etc/dangling"), b"nothing-here");
}

#[test]
fn user_and_group_names_are_not_carried() {
    let out = flatten(vec![l(vec![
        dir("home").names("root", "root"),
        file("home/f", "f")
            .owner(1000, 1000)
            .names("alice", "staff"),
    ])]);
    // assert_invariants already checked every entry; make it explicit here.
    for p in ["home", "home/f"] {
        assert!(out.get(p).uname.is_empty() && out.get(p).gname.is_empty());
    }
    assert_eq!(out.get("home/f").uid, 1000);
}

// ------------------------------------------------------------------------------ rule 7

#[test]
fn names_over_255_bytes_are_preserved() {
    let deep = (0..12)
        .map(|i| format!("component-{i:02}-xxxxxxxxxxxxx"))
        .collect::<Vec<_>>();
    let long_dir = deep.join("/"); // ~ 310 bytes
    let long_pax = format!("{long_dir}/file-via-pax");
    let long_gnu = format!("{long_dir}/file-via-gnu-longname");
    let prefix_split = format!("{}/{}", "p".repeat(100), "split-into-ustar-prefix");
    let long_target = format!("/{}", "t".repeat(200));
    let long_single = "n".repeat(255);
    let out = flatten(vec![
        l(vec![
            file(&long_pax, "pax"),
            file(&long_gnu, "gnu").gnu_long_names(),
            file(&prefix_split, "prefix"),
            file(&long_single, "255 bytes in one component"),
        ]),
        l(vec![
            symlink("short-link", &long_target),
            symlink(format!("{long_dir}/gnu-link"), &long_target).gnu_long_names(),
            hardlink("hard-to-long", &long_pax),
            hardlink(format!("{long_dir}/long-hard-to-long"), &long_gnu).gnu_long_names(),
        ]),
    ]);
    assert!(long_pax.len() > 255);
    assert_eq!(out.get(&long_pax).content, b"pax");
    assert_eq!(out.get(&long_gnu).content, b"gnu");
    assert_eq!(out.get(&prefix_split).content, b"prefix");
    assert_eq!(out.get(&long_single).content, b"255 bytes in one component");
    assert_eq!(
        out.get("short-link").link.as_deref(),
        Some(long_target.as_bytes())
    );
    assert_eq!(
        out.get(format!("{long_dir}/gnu-link")).link.as_deref(),
        Some(long_target.as_bytes())
    );
    assert_eq!(out.content("hard-to-long"), b"pax");
    assert_eq!(out.content(format!("{long_dir}/long-hard-to-long")), b"gnu");
    // every directory of the long path exists
    let mut acc = String::new();
    for c in &deep {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(c);
        assert_eq!(out.get(&acc).kind, OutKind::Dir, "{acc}");
    }
}

#[test]
fn non_utf8_and_odd_names_are_preserved_byte_exact() {
    let long_pax = [b"\xff\xfe/".as_slice(), &[0xe9; 150], b"/pax"].concat();
    let long_gnu = [b"\xff\xfe/".as_slice(), &[0xe9; 150], b"/gnu"].concat();
    let out = flatten(vec![l(vec![
        file(b"caf\xe9".as_slice(), "latin-1"),
        dir(b"\xff\xfe".as_slice()),
        file(b"\xff\xfe/x\x80y".as_slice(), "invalid utf-8"),
        file("back\\slash", "a backslash is an ordinary character"),
        file("with space", "space"),
        file("tab\tand\nnewline", "control characters"),
        file("emoji-\u{1F600}", "utf-8"),
        hardlink(b"hl-\xe9".as_slice(), b"caf\xe9".as_slice()),
        file(&long_pax, "long, non-UTF-8, PAX"),
        file(&long_gnu, "long, non-UTF-8, GNU").gnu_long_names(),
    ])]);
    assert_eq!(out.get(&long_pax).content, b"long, non-UTF-8, PAX");
    assert_eq!(out.get(&long_gnu).content, b"long, non-UTF-8, GNU");
    assert_eq!(out.get(b"caf\xe9").content, b"latin-1");
    assert_eq!(out.get(b"\xff\xfe").kind, OutKind::Dir);
    assert_eq!(out.get(b"\xff\xfe/x\x80y").content, b"invalid utf-8");
    assert_eq!(
        out.get("back\\slash").content,
        b"a backslash is an ordinary character"
    );
    out.assert_absent("back/slash");
    assert_eq!(out.get("with space").content, b"space");
    assert_eq!(out.get("tab\tand\nnewline").content, b"control characters");
    assert_eq!(out.get("emoji-\u{1F600}").content, b"utf-8");
    assert_eq!(out.content(b"hl-\xe9"), b"latin-1");
}

#[test]
fn absolute_names_are_made_relative() {
    let out = flatten(vec![l(vec![
        dir("/etc"),
        file("/etc/x", "x"),
        dir("/opt/"),
        file("/opt/y", "y"),
        symlink("/lnk", "/etc/x"),
        hardlink("/h", "/etc/x"),
    ])]);
    assert_eq!(
        out.sorted_paths(),
        ["etc", "etc/x", "h", "lnk", "opt", "opt/y"]
    );
    assert_eq!(
        out.get("lnk").link.as_deref(),
        Some(b"/etc/x".as_slice()),
        "symlink verbatim"
    );
    assert_eq!(out.content("h"), b"x");
}

#[test]
fn dot_slash_and_double_slash_are_normalized() {
    let out = flatten(vec![l(vec![
        dir("./"),
        dir("./a//b/"),
        file("./a//b/./c", "c"),
        file("a/b//d", "d"),
        hardlink("./a/./e", "a//b/c"),
    ])]);
    assert_eq!(out.sorted_paths(), ["a", "a/b", "a/b/c", "a/b/d", "a/e"]);
    assert_eq!(out.content("a/e"), b"c");
}

#[test]
fn dotdot_name_is_refused() {
    for (i, name) in ["../evil-escape", "a/../../evil-escape", "./../evil-escape"]
        .into_iter()
        .enumerate()
    {
        let r = flatten_fails(vec![l(vec![dir("a"), file(name, "pwned")])]);
        assert!(
            r.stderr.contains("evil-escape"),
            "case {i}: the error must name the entry {name:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn dotdot_in_a_later_layer_is_refused() {
    let r = flatten_fails(vec![
        l(vec![file("ok", "ok")]),
        l(vec![
            dir("x"),
            symlink("x/../../evil-symlink-name", "target"),
        ]),
    ]);
    assert!(r.stderr.contains("evil-symlink-name"), "{}", r.stderr);
}

#[test]
fn dotdot_hardlink_target_is_refused() {
    flatten_fails(vec![l(vec![
        dir("etc"),
        hardlink("etc/stolen", "../../etc/shadow"),
    ])]);
}

#[test]
fn aufs_metadata_is_never_output() {
    let out = flatten(vec![
        l(vec![
            dir(".wh..wh.plnk"),
            file(".wh..wh.plnk/1234.5678", "plink"),
            file(".wh..wh.aufs", ""),
            dir(".wh..wh.orph"),
            dir("usr"),
            file("usr/keep", "k"),
        ]),
        l(vec![file(".wh..wh.aufs", ""), dir(".wh..wh.plnk")]),
    ]);
    assert_eq!(out.sorted_paths(), ["usr", "usr/keep"]);
}

#[test]
fn bare_whiteout_is_refused() {
    flatten_fails(vec![
        l(vec![dir("etc"), file("etc/x", "x")]),
        l(vec![file("etc/.wh.", "")]),
    ]);
}

// ------------------------------------------------------------------------------ rule 8

#[test]
fn implicit_parent_directories_are_0755_root() {
    let out = flatten(vec![l(vec![
        file("a/b/c", "c").owner(1000, 1000).mode(0o600),
        dir("x/y").mode(0o700).owner(5, 5),
    ])]);
    for p in ["a", "a/b", "x"] {
        let e = out.get(p);
        assert_eq!(
            (e.kind, e.mode, e.uid, e.gid),
            (OutKind::Dir, 0o755, 0, 0),
            "{p}"
        );
    }
    assert_eq!(out.get("x/y").mode, 0o700);
    assert_eq!(out.get("a/b/c").uid, 1000);
}

#[test]
fn explicit_directory_after_its_children_sets_the_metadata() {
    let out = flatten(vec![l(vec![
        file("d/x", "x"),
        dir("d").mode(0o700).owner(5, 6),
    ])]);
    let d = out.get("d");
    assert_eq!((d.kind, d.mode, d.uid, d.gid), (OutKind::Dir, 0o700, 5, 6));
    assert_eq!(out.get("d/x").content, b"x");
}

#[test]
fn implicit_parent_does_not_override_a_lower_directory() {
    let out = flatten(vec![
        l(vec![
            dir("d").mode(0o700).owner(5, 6).mtime(1_111_111_111),
            file("d/old", "o"),
        ]),
        l(vec![file("d/new", "n")]), // no entry for d in this layer
    ]);
    let d = out.get("d");
    assert_eq!(
        (d.mode, d.uid, d.gid, d.mtime),
        (0o700, 5, 6, 1_111_111_111)
    );
    assert_eq!(out.sorted_paths(), ["d", "d/new", "d/old"]);
}

#[test]
fn entry_below_a_lower_layer_file_replaces_the_file_with_a_directory() {
    let out = flatten(vec![
        l(vec![file("p", "a file")]),
        l(vec![file("p/q", "q")]),
    ]);
    assert_eq!(out.get("p").kind, OutKind::Dir);
    assert_eq!(out.get("p/q").content, b"q");
}

#[test]
fn entry_below_a_lower_layer_symlink_replaces_the_symlink_with_a_directory() {
    for with_dir_entry in [false, true] {
        let mut upper = Vec::new();
        if with_dir_entry {
            upper.push(dir("lib"));
        }
        upper.push(file("lib/x", "x"));
        let out = flatten(vec![
            l(vec![
                dir("usr"),
                dir("usr/lib"),
                file("usr/lib/libc.so", "c"),
                symlink("lib", "usr/lib"),
            ]),
            l(upper),
        ]);
        assert_eq!(
            out.get("lib").kind,
            OutKind::Dir,
            "with_dir_entry={with_dir_entry}"
        );
        assert_eq!(out.get("lib/x").content, b"x");
        out.assert_absent("lib/libc.so");
        out.assert_absent("usr/lib/x");
        assert_eq!(out.get("usr/lib/libc.so").content, b"c");
    }
}

// ------------------------------------------------------------------------------ rule 9

#[test]
fn the_same_image_gives_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(vec![
        l(vec![dir("d"), file("d/a", "a"), file("b", "b")]),
        l(vec![file("c", "c"), hardlink("d/h", "d/a"), whiteout("b")]),
    ])
    .build();
    let src = oci_dir(tmp.path(), &img, "t");
    let a = oci2wsl(&["-q", &src]);
    let b = oci2wsl(&["-q", &src]);
    a.listing();
    assert_eq!(a.stdout, b.stdout);
}

// ------------------------------------------------------------------------------ the toolkit

/// The fixtures and the invariant checker must themselves be right, or the tests above
/// prove nothing: these check them without the product.
mod toolkit {
    use super::common::*;
    use std::io::Read;

    fn root() -> Entry {
        dir("./")
    }

    fn rejects(entries: Vec<Entry>, why: &str) {
        let tar = encode_tar(&entries);
        let l = Listing::parse(&tar);
        let r = std::panic::catch_unwind(|| l.assert_invariants());
        assert!(
            r.is_err(),
            "assert_invariants must reject: {why}\n{}",
            l.dump()
        );
    }

    #[test]
    fn invariants_accept_a_good_output() {
        let tar = encode_tar(&[
            root(),
            symlink("bin", "usr/bin"),
            dir("etc/"),
            dir("usr/"),
            dir("usr/bin/"),
            file("usr/bin/a", "a"),
            hardlink("usr/bin/b", "usr/bin/a"),
            file("etc/x", "x"),
        ]);
        Listing::parse(&tar).assert_invariants();
    }

    #[test]
    fn invariants_reject_bad_outputs() {
        rejects(vec![dir("etc/")], "no root first");
        rejects(vec![root(), file("a", "1"), file("a", "2")], "a path twice");
        rejects(
            vec![root(), hardlink("b", "a"), file("a", "1")],
            "hardlink before its target",
        );
        rejects(
            vec![root(), hardlink("b", "nothing")],
            "hardlink to nothing",
        );
        rejects(
            vec![root(), file("a", "1"), dir("d/")],
            "a directory after files",
        );
        rejects(vec![root(), dir("b/"), dir("a/")], "directories unsorted");
        rejects(vec![root(), file("d/x", "x")], "no parent directory");
        rejects(
            vec![root(), symlink("l", "x"), file("l/x", "x")],
            "a path below a symlink",
        );
        rejects(vec![root(), file(".wh.x", "")], "a whiteout");
        rejects(
            vec![root(), dir("d/"), file("d/.wh..wh..opq", "")],
            "an opaque marker",
        );
        rejects(vec![root(), file("/abs", "")], "an absolute name");
        rejects(vec![root(), file("./a", "")], "a ./ prefix");
        rejects(vec![root(), dir("a/"), file("a//b", "")], "a double slash");
        rejects(vec![root(), file("../up", "")], "a .. component");
        rejects(vec![root(), file("a", "").names("root", "")], "a uname");
    }

    /// layer-semantics.md rule 9 asks only that a hardlink come after the entry it names:
    /// a hardlink to a symlink is legal (and the product keeps one), to a directory never.
    #[test]
    fn invariants_accept_a_hardlink_to_a_symlink_but_not_to_a_directory() {
        let tar = encode_tar(&[root(), symlink("s", "t"), hardlink("h", "s")]);
        Listing::parse(&tar).assert_invariants();
        rejects(
            vec![root(), dir("d/"), hardlink("h", "d")],
            "hardlink to a directory",
        );
    }

    /// The map view is the listing after its invariants: the same checker, never a second.
    #[test]
    fn tree_view_checks_the_invariants_and_names_the_root() {
        let t = tree(&encode_tar(&[
            root(),
            dir("d/"),
            chardev("d/null", 1, 3),
            file("d/f", "x"),
            hardlink("d/h", "d/f"),
        ]));
        assert_eq!(
            t.keys().map(String::as_str).collect::<Vec<_>>(),
            ["./", "d", "d/f", "d/h", "d/null"]
        );
        assert_eq!((t["d/null"].kind, t["d/null"].dev), ('c', (1, 3)));
        assert_eq!(content_of(&t, "d/h"), b"x");
        let bad = encode_tar(&[root(), hardlink("h", "f"), file("f", "x")]);
        assert!(std::panic::catch_unwind(|| tree(&bad)).is_err());
    }

    /// `go_tar` goes through the layer encoder; its headers must still be byte for byte what
    /// Go's archive/tar writes for a USTAR member (tests/formats.rs relies on it).
    #[test]
    fn go_tar_headers_are_what_go_archive_tar_writes() {
        let tar = go_tar(&[go_tar_file("a/b", 0o17, b"xyz".to_vec())]);
        assert_eq!(
            tar.len(),
            512 + 512 + 1024,
            "header, padded content, two end blocks"
        );
        let h = &tar[..512];
        assert_eq!(&h[..4], b"a/b\0");
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[108..116], b"0000000\0");
        assert_eq!(&h[116..124], b"0000000\0");
        assert_eq!(&h[124..136], b"00000000003\0");
        assert_eq!(&h[136..148], b"00000000017\0");
        assert_eq!(h[156], b'0');
        assert_eq!(&h[257..265], b"ustar\x0000");
        assert!(h[265..329].iter().all(|&b| b == 0), "no user or group name");
        assert_eq!(&h[329..345], b"0000000\x000000000\0");
        assert!(h[345..].iter().all(|&b| b == 0), "no prefix");
        let mut blank = h.to_vec();
        blank[148..156].fill(b' ');
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
        assert_eq!(&tar[512..515], b"xyz");
        assert!(tar[515..].iter().all(|&b| b == 0));
    }

    #[test]
    fn encoder_round_trips_through_the_listing() {
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(150));
        let entries = vec![
            root(),
            file(&long, "pax name"),
            file(format!("{long}-gnu"), "gnu name").gnu_long_names(),
            symlink("s", "t".repeat(300)),
            hardlink("h", "x".repeat(120)).gnu_long_names(),
            file("ids", "").owner(3_000_000, 4_000_000_000),
            file("ids256", "")
                .owner(2_097_152, 9_999_999_999)
                .base256_ids(),
            file("xa", "").xattr("user.nl", b"a\nb=c\n\0".as_slice()),
            chardev("c", 511, 1_048_575),
            blockdev("b", 8, 1),
            fifo("p"),
            file(b"\xff\xfe".as_slice(), "bytes")
                .mode(0o4755)
                .mtime(1234),
        ];
        let l = Listing::parse(&encode_tar(&entries));
        assert_eq!(l.entries.len(), entries.len());
        assert_eq!(l.get(&long).content, b"pax name");
        assert_eq!(l.get(format!("{long}-gnu")).content, b"gnu name");
        assert_eq!(l.get("s").link.as_deref(), Some("t".repeat(300).as_bytes()));
        assert_eq!(l.get("h").link.as_deref(), Some("x".repeat(120).as_bytes()));
        assert_eq!(
            (l.get("ids").uid, l.get("ids").gid),
            (3_000_000, 4_000_000_000)
        );
        assert_eq!(
            (l.get("ids256").uid, l.get("ids256").gid),
            (2_097_152, 9_999_999_999)
        );
        assert_eq!(
            l.get("xa")
                .xattrs
                .get(b"user.nl".as_slice())
                .map(Vec::as_slice),
            Some(b"a\nb=c\n\0".as_slice())
        );
        assert_eq!(l.get("c").dev, Some((511, 1_048_575)));
        assert_eq!(
            (l.get("b").kind, l.get("b").dev),
            (OutKind::Block, Some((8, 1)))
        );
        assert_eq!(l.get("p").kind, OutKind::Fifo);
        let e = l.get(b"\xff\xfe");
        assert_eq!(
            (e.mode, e.mtime, e.content.as_slice()),
            (0o4755, 1234, b"bytes".as_slice())
        );
        // hostile names are written as given
        let l = Listing::parse(&encode_tar(&[
            file("../x", ""),
            file("/etc/x", ""),
            file(".wh.", ""),
        ]));
        assert_eq!(l.entries[0].raw_path, b"../x");
        assert_eq!(l.entries[1].raw_path, b"/etc/x");
        assert_eq!(l.entries[2].raw_path, b".wh.");
    }

    #[test]
    fn encoder_output_reads_with_the_system_tar() {
        // An independent reader: GNU tar.
        if !require_tools(&["tar"]) {
            return;
        }
        let long = format!("{}/{}", "d".repeat(150), "f".repeat(150));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.tar");
        std::fs::write(
            &path,
            encode_tar(&[
                dir("a"),
                file("a/x", "x").owner(3_000_000, 5).xattr("user.k", "v"),
                file(&long, "pax"),
                file(format!("{long}-gnu"), "gnu").gnu_long_names(),
                hardlink("a/h", "a/x"),
                symlink("s", "t".repeat(200)),
                fifo("p"),
            ]),
        )
        .unwrap();
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&long) && text.contains(&format!("{long}-gnu")),
            "{text}"
        );
        assert!(text.contains("3000000"), "{text}");
    }

    /// `GzipHalves` is two gzip members whose boundary falls inside the tar, not between
    /// entries; `raw_layer` stores the tar it is given byte for byte.
    #[test]
    fn gzip_halves_and_raw_layers_are_what_they_say() {
        let entries = vec![file("a", "x".repeat(3000)), file("b", "y")];
        let tar = encode_tar(&entries);
        let img = image(vec![
            layer(entries).compression(Compression::GzipHalves),
            raw_layer(tar.clone()).uncompressed(),
        ])
        .build();
        let blob = &img.layers[0].bytes;
        let members = blob.windows(3).filter(|w| *w == [0x1f, 0x8b, 0x08]).count();
        assert!(members >= 2, "{members} gzip member headers");
        assert_eq!(gunzip(blob), tar);
        assert_ne!(tar.len() / 2 % 512, 0, "the split is inside an entry");
        assert_eq!(img.layers[1].bytes, tar);
        assert_eq!(img.layer_tars[1], tar);
    }

    #[test]
    fn multi_member_gzip_fixture_really_has_several_members() {
        let img = image(vec![layer(vec![
            file("a", "1"),
            file("b", "2"),
            file("c", "3"),
        ])
        .multi_gzip()])
        .build();
        let blob = &img.layers[0].bytes;
        let mut first = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut first)
            .unwrap();
        let mut all = Vec::new();
        flate2::read::MultiGzDecoder::new(&blob[..])
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, img.layer_tars[0]);
        assert!(
            first.len() < all.len(),
            "a single-member reader must miss entries"
        );
        // and a plain tar reader of the first member sees a clean, shorter archive
        assert_eq!(first.len() % 512, 0);
    }

    #[test]
    fn corruptions_do_what_they_say() {
        let layers = || {
            vec![
                layer(vec![file("a", "content")]).uncompressed(),
                layer(vec![file("b", "more")]),
            ]
        };
        let good = image(layers()).build();
        let sha = |b: &[u8]| sha256_digest(b);

        let bad = image(layers()).corrupt(Corruption::LayerBytes(0)).build();
        assert_ne!(sha(&bad.layers[0].bytes), bad.layers[0].digest);
        assert_eq!(
            bad.layers[0].bytes.len() as i64,
            bad.layers[0].size,
            "same size"
        );
        assert_eq!(bad.layers[0].digest, good.layers[0].digest);

        let bad = image(layers()).corrupt(Corruption::LayerDigest(1)).build();
        assert_ne!(sha(&bad.layers[1].bytes), bad.layers[1].digest);
        assert_eq!(bad.diff_ids, good.diff_ids);

        let bad = image(layers())
            .corrupt(Corruption::LayerSize(1, -1))
            .build();
        assert_eq!(bad.layers[1].size, good.layers[1].size - 1);
        assert_eq!(bad.layers[1].bytes, good.layers[1].bytes);

        let bad = image(layers()).corrupt(Corruption::BlobByte(1)).build();
        assert_ne!(sha(&bad.layers[1].bytes), bad.layers[1].digest);
        assert_eq!(bad.layers[1].digest, good.layers[1].digest);
        assert_eq!(bad.layers[1].bytes.len(), good.layers[1].bytes.len());
        let differing = (bad.layers[1].bytes.iter())
            .zip(&good.layers[1].bytes)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 1, "one byte flipped");

        let bad = image(layers()).corrupt(Corruption::DiffId(1)).build();
        assert_ne!(bad.diff_ids[1], good.diff_ids[1]);
        assert_eq!(bad.layers[1].bytes, good.layers[1].bytes);

        for c in [Corruption::ConfigBytes, Corruption::ManifestBytes] {
            let bad = image(layers()).corrupt(c.clone()).build();
            let blob = if c == Corruption::ConfigBytes {
                &bad.config
            } else {
                &bad.manifest
            };
            assert_ne!(sha(&blob.bytes), blob.digest, "{c:?}");
            assert_eq!(blob.bytes.len() as i64, blob.size, "{c:?}");
            serde_json::from_slice::<serde_json::Value>(&blob.bytes).expect("still JSON");
        }

        // good blobs match their descriptors, diff_ids their tars
        for (b, tar) in good.layers.iter().zip(&good.layer_tars) {
            assert_eq!(sha(&b.bytes), b.digest);
            assert_eq!(b.bytes.len() as i64, b.size);
            assert!(good.diff_ids.contains(&sha(tar)));
        }
        let sha512 = image(layers()).sha512().build();
        assert_eq!(
            Algo::Sha512.digest(&sha512.layers[1].bytes),
            sha512.layers[1].digest
        );
        assert_eq!(sha512.diff_ids, good.diff_ids);
    }
}
