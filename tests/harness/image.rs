//! Fuzzing harness for boot-image import, shared by `tests/fuzz_replay.rs` and
//! `fuzz/fuzz_targets/image.rs`.
//!
//! Bytes → unpack → import → export → import again must give the same state: whatever an image
//! holds, what the runtime exports from it is a faithful image of what it imported. Bytes that are
//! not an image are refused as a whole (that the store then holds nothing of them is pinned by
//! `tests/boot_images.rs`).

use switchboard::boot::{Image, pack, unpack};
use switchboard::runtime::{Runtime, Settings};
use switchboard::store::Origin;

/// A runtime on a fresh data directory, holding nothing.
fn empty() -> (tempfile::TempDir, std::sync::Arc<Runtime>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = Settings::new(dir.path().join("data"));
    settings.boot = Some(Image::default());
    let runtime = Runtime::open(settings).expect("the runtime opens");
    (dir, runtime)
}

/// Checks the round trip for `bytes`.
pub fn run(bytes: &[u8]) {
    let (image, problems) = unpack(bytes, None);
    if !problems.is_empty() {
        return;
    }
    let (_first_dir, first) = empty();
    if first.import(&image, Origin::Boot).is_err() {
        return;
    }
    let exported = first.snapshot(false).expect("a snapshot");
    let packed = pack(&exported, None).expect("an imported state packs");
    let (again, problems) = unpack(&packed, None);
    assert!(problems.is_empty(), "an exported image does not unpack: {problems:?}");
    let (_second_dir, second) = empty();
    second.import(&again, Origin::Boot).expect("an exported image imports");
    let state = second.snapshot(false).expect("a snapshot");
    assert_eq!(state, exported, "import → export → import changed the state");
    assert_eq!(pack(&state, None).expect("packs"), packed, "the same state packed to other bytes");
}
