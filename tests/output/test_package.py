"""Output packages: real AES-256 zips with a minisign-signed manifest, checked by other
tools (7-Zip, minisign) as well as by us.

The 7-Zip password goes on its command line here only because it is a throwaway test
password; privmask itself never takes a password on a command line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import pyzipper

from privmask.adapters import files
from privmask.adapters.minisign import SecretKey, verify
from privmask.adapters.package import (
    PackageCheck,
    PackageContents,
    PackageError,
    check_package,
    read_package,
    write_package,
)

PASSWORD = b"throwaway-Test-pw-4711"
MANIFEST = {
    "input_sha256": "ab" * 32,
    "output_sha256": "cd" * 32,
    "privmask_version": "0.1.0",
    "masked": {"face": 3, "person": 1},
    "note": "caf\u00e9",
}
ENTRIES = ["video.mp4", "manifest.json", "manifest.json.minisig"]
SIGNER = SecretKey.generate()  # the site key
OTHER = SecretKey.generate()  # somebody else's


def described(video: Path, manifest: dict[str, Any] = MANIFEST) -> dict[str, Any]:
    """A manifest that records the video as the daemon's do (`output.sha256`, `.bytes`)."""
    data = video.read_bytes()
    output = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return {**manifest, "output": output}


@pytest.fixture(scope="session")
def sevenzip() -> str:
    """7-Zip is the independent reader; CI installs it, so its absence is a failure."""
    found = shutil.which("7z")
    if found is None:
        pytest.fail(
            "7z not found: install the Debian package p7zip-full (apt-get install p7zip-full)"
        )
    return found


def run_7z(sevenzip: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sevenzip, *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


@pytest.fixture(scope="session")
def minisign() -> str:
    """The independent signature checker (Debian package minisign, installed by the setup)."""
    found = shutil.which("minisign")
    if found is None:
        pytest.fail("minisign not found: install the Debian package minisign (scripts/setup)")
    return found


@pytest.fixture
def package(clip: Path, outbox: Path) -> Path:
    contents = PackageContents(clip, described(clip))
    return write_package(contents, outbox, "CAM-LOBBY-0001", PASSWORD, SIGNER)


def leftovers(folder: Path, keep: Collection[str] = ()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_package_lands_under_its_name_with_nothing_else(package: Path, outbox: Path) -> None:
    assert package == outbox / "CAM-LOBBY-0001.zip"
    assert leftovers(outbox) == ["CAM-LOBBY-0001.zip"]


def test_7z_opens_it_and_extracts_the_exact_video_and_manifest(
    sevenzip: str, package: Path, clip: Path, tmp_path: Path
) -> None:
    tested = run_7z(sevenzip, "t", f"-p{PASSWORD.decode()}", package)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    target = tmp_path / "extracted"
    extracted = run_7z(sevenzip, "x", "-y", f"-p{PASSWORD.decode()}", f"-o{target}", package)
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr

    assert sorted(p.name for p in target.iterdir()) == sorted(ENTRIES)
    assert (target / "video.mp4").read_bytes() == clip.read_bytes()
    manifest_bytes = (target / "manifest.json").read_bytes()
    expected = described(clip)
    assert json.loads(manifest_bytes) == expected
    assert (
        manifest_bytes
        == (json.dumps(expected, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
    )
    signature = (target / "manifest.json.minisig").read_text()
    assert verify(manifest_bytes, signature, SIGNER.public) == "privmask manifest"


def test_minisign_verifies_the_manifest_after_7z_extracts_it(
    sevenzip: str, minisign: str, package: Path, tmp_path: Path
) -> None:
    """What the README tells a recipient: 7-Zip and minisign, no privmask installed."""
    target = tmp_path / "x"
    extracted = run_7z(sevenzip, "x", "-y", f"-p{PASSWORD.decode()}", f"-o{target}", package)
    assert extracted.returncode == 0, extracted.stdout + extracted.stderr
    checked = run_minisign(minisign, target, "-Vm", "manifest.json", "-P", SIGNER.public.base64)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Signature and comment signature verified" in checked.stdout + checked.stderr
    assert "Trusted comment: privmask manifest" in checked.stdout + checked.stderr

    other = run_minisign(minisign, target, "-Vm", "manifest.json", "-P", OTHER.public.base64)
    assert other.returncode != 0
    manifest = target / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"face": 3', b'"face": 0'))
    changed = run_minisign(minisign, target, "-Vm", "manifest.json", "-P", SIGNER.public.base64)
    assert changed.returncode != 0


def run_minisign(minisign: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [minisign, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_7z_sees_aes256_generic_entry_names_and_stored_video(sevenzip: str, package: Path) -> None:
    listing = run_7z(sevenzip, "l", "-slt", f"-p{PASSWORD.decode()}", package)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    entries: dict[str, str] = {}
    current = None
    for line in listing.stdout.splitlines():
        key, _, value = line.partition(" = ")
        if key == "Path" and value != str(package):
            current = value
        elif key == "Method" and current is not None:
            entries[current] = value
    assert entries == {
        "video.mp4": "AES-256 Store",
        "manifest.json": "AES-256 Deflate",
        "manifest.json.minisig": "AES-256 Store",
    }
    with pyzipper.AESZipFile(package) as archive:
        assert archive.namelist() == ENTRIES


def test_7z_fails_with_a_wrong_password(sevenzip: str, package: Path, tmp_path: Path) -> None:
    assert run_7z(sevenzip, "t", "-pnot-the-password", package).returncode != 0
    target = tmp_path / "wrong"
    extracted = run_7z(sevenzip, "x", "-y", "-pnot-the-password", f"-o{target}", package)
    assert extracted.returncode != 0


def test_read_package_round_trip(package: Path, clip: Path) -> None:
    video, manifest = read_package(package, PASSWORD, SIGNER.public)
    assert video == clip.read_bytes()
    assert manifest == described(clip)
    assert read_package(package, PASSWORD, None) == (video, manifest)


def test_check_package_reports_what_it_verified(package: Path, clip: Path) -> None:
    checked = check_package(package, PASSWORD, SIGNER.public)
    assert checked == PackageCheck(
        manifest=described(clip),
        video_sha256=hashlib.sha256(clip.read_bytes()).hexdigest(),
        video_bytes=clip.stat().st_size,
        signed_by=SIGNER.public.key_id_hex,
    )


@pytest.mark.parametrize("reader", [read_package, check_package])
def test_a_wrong_password_is_one_line(package: Path, reader: Any) -> None:
    with pytest.raises(PackageError) as caught:
        reader(package, b"not-the-password", SIGNER.public)
    assert str(caught.value) == f"wrong password for package {package}"


def test_other_video_suffix(clip: Path, outbox: Path, sevenzip: str) -> None:
    path = write_package(PackageContents(clip, {}, ".mkv"), outbox, "p", PASSWORD, SIGNER)
    with pyzipper.AESZipFile(path) as archive:
        assert archive.namelist() == ["video.mkv", "manifest.json", "manifest.json.minisig"]
    assert run_7z(sevenzip, "t", f"-p{PASSWORD.decode()}", path).returncode == 0


def test_no_camera_or_file_names_visible_without_the_password(clip: Path, outbox: Path) -> None:
    secret_clip = clip.with_name("CAM-SECRET-ENTRANCE.mp4")
    shutil.copy(clip, secret_clip)
    manifest = {"camera": "CAM-SECRET-ENTRANCE", "source": str(secret_clip)}
    path = write_package(PackageContents(secret_clip, manifest), outbox, "pkg", PASSWORD, SIGNER)
    raw = path.read_bytes()
    assert b"CAM-SECRET" not in raw
    assert b"ENTRANCE" not in raw


def rewrite(package: Path, replace: dict[str, bytes], password: bytes = PASSWORD) -> None:
    """Re-pack a package with some entries swapped, as someone holding the password could."""
    with pyzipper.AESZipFile(package) as archive:
        archive.setpassword(PASSWORD)
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents.update(replace)
    with pyzipper.AESZipFile(package, "w", encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(password)
        for name, data in contents.items():
            archive.writestr(name, data)


def readers_refuse(package: Path, *expected: str) -> None:
    """check_package and read_package (given the key) both refuse, with one line."""
    for reader in (check_package, read_package):
        with pytest.raises(PackageError) as caught:
            reader(package, PASSWORD, SIGNER.public)
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"package {package}: ")
        for part in expected:
            assert part in message


def forged_manifest(package: Path) -> bytes:
    """The issue's forgery: the rule rewritten to one that needs no masking."""
    _, manifest = read_package(package, PASSWORD, None)
    manifest["rule"] = "no-masking-needed"
    manifest["masked"]["face"] = 0
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def test_a_manifest_rewritten_by_a_recipient_fails(package: Path) -> None:
    """Everyone who received the package knows its password; that no longer lets them sign."""
    rewrite(package, {"manifest.json": forged_manifest(package)})
    readers_refuse(package, "manifest signature does not verify", SIGNER.public.key_id_hex)


def test_a_manifest_re_signed_with_another_key_fails(package: Path) -> None:
    forged = forged_manifest(package)
    resigned = OTHER.sign(forged, "privmask manifest")
    rewrite(package, {"manifest.json": forged, "manifest.json.minisig": resigned.encode()})
    other, ours = OTHER.public.key_id_hex, SIGNER.public.key_id_hex
    readers_refuse(package, f"manifest is signed by key {other}, not by key {ours}")


def test_a_package_signed_by_another_site_fails(clip: Path, outbox: Path) -> None:
    theirs = write_package(PackageContents(clip, described(clip)), outbox, "x", PASSWORD, OTHER)
    readers_refuse(theirs, f"manifest is signed by key {OTHER.public.key_id_hex}, not by")
    assert check_package(theirs, PASSWORD, OTHER.public).signed_by == OTHER.public.key_id_hex


def test_a_signature_made_for_something_else_fails(package: Path) -> None:
    """Same key, same bytes, but a signature whose signed comment says it is not a manifest."""
    with pyzipper.AESZipFile(package) as archive:
        archive.setpassword(PASSWORD)
        manifest = archive.read("manifest.json")
    other_use = SIGNER.sign(manifest, "privmask audit checkpoint")
    rewrite(package, {"manifest.json.minisig": other_use.encode()})
    readers_refuse(package, "not a manifest signature")


def test_a_swapped_video_fails(package: Path, clip: Path) -> None:
    rewrite(package, {"video.mp4": clip.read_bytes() + b"an edited frame"})
    readers_refuse(package, "video does not match the manifest")


def test_a_manifest_without_the_video_hash_fails(clip: Path, outbox: Path) -> None:
    path = write_package(PackageContents(clip, MANIFEST), outbox, "p", PASSWORD, SIGNER)
    readers_refuse(path, "manifest does not record")


@pytest.mark.parametrize("reader", [read_package, check_package])
def test_unencrypted_package_is_refused(package: Path, reader: Any) -> None:
    with pyzipper.AESZipFile(package) as archive:
        archive.setpassword(PASSWORD)
        contents = {name: archive.read(name) for name in archive.namelist()}
    with pyzipper.ZipFile(package, "w") as plain:
        for name, data in contents.items():
            plain.writestr(name, data)
    with pytest.raises(PackageError, match="unencrypted"):
        reader(package, PASSWORD, SIGNER.public)


@pytest.mark.parametrize("reader", [read_package, check_package])
@pytest.mark.parametrize("damage", ["truncate", "flip", "not-a-zip"])
def test_corrupt_package(package: Path, damage: str, reader: Any) -> None:
    data = bytearray(package.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF  # inside the stored video: AES HMAC must catch it
    else:
        data = bytearray(b"this is not a zip file at all")
    package.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="corrupt") as caught:
        reader(package, PASSWORD, SIGNER.public)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("reader", [read_package, check_package])
def test_missing_package(tmp_path: Path, reader: Any) -> None:
    with pytest.raises(PackageError, match="does not exist"):
        reader(tmp_path / "nothing.zip", PASSWORD, SIGNER.public)


def test_a_package_of_the_password_era_is_named_as_such(package: Path) -> None:
    """Packages made before the site key carry `manifest.sig`, an HMAC keyed by the password."""
    with pyzipper.AESZipFile(package) as archive:
        archive.setpassword(PASSWORD)
        contents = {name: archive.read(name) for name in archive.namelist()}
    contents["manifest.sig"] = contents.pop("manifest.json.minisig")
    with pyzipper.AESZipFile(package, "w", encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(PASSWORD)
        for name, data in contents.items():
            archive.writestr(name, data)
    with pytest.raises(PackageError, match="password-keyed manifest.sig") as caught:
        check_package(package, PASSWORD, SIGNER.public)
    assert "\n" not in str(caught.value)


FLAT_MEMORY = """
import json, resource, sys
from pathlib import Path
from privmask.adapters.minisign import PublicKey
from privmask.adapters.package import check_package

public = PublicKey.parse(sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
checked = check_package(Path(sys.argv[1]), sys.argv[2].encode(), public)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "bytes": checked.video_bytes}))
"""


def test_check_package_streams_the_video(outbox: Path, tmp_path: Path) -> None:
    """A 128 MB video checked in a fresh process: its peak memory barely moves."""
    size = 128 << 20
    video = tmp_path / "big.mp4"
    with open(video, "wb") as handle:
        handle.truncate(size)  # sparse: the test measures memory, not the disk
    manifest = {"output": {"sha256": hashlib.sha256(bytes(size)).hexdigest(), "bytes": size}}
    path = write_package(PackageContents(video, manifest), outbox, "big", PASSWORD, SIGNER)
    video.unlink()
    done = subprocess.run(
        [sys.executable, "-c", FLAT_MEMORY, str(path), PASSWORD.decode(), SIGNER.public.base64],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["bytes"] == size
    assert figures["grew_kib"] < 32 * 1024, figures  # the video itself is 128 MiB


# --- failures while writing: a clear PackageError and nothing partial left behind ---


def test_outbox_is_a_file(clip: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "outbox"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(PackageError, match="not a folder"):
        write_package(PackageContents(clip, MANIFEST), not_a_folder, "p", PASSWORD, SIGNER)
    assert leftovers(tmp_path, {"clip.mp4"}) == ["outbox"]
    assert not_a_folder.read_bytes() == b"x"


def test_outbox_missing(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="does not exist"):
        write_package(PackageContents(clip, MANIFEST), tmp_path / "gone", "p", PASSWORD, SIGNER)
    assert not (tmp_path / "gone").exists()


def test_existing_package_is_never_overwritten(package: Path, clip: Path, outbox: Path) -> None:
    before = package.read_bytes()
    other = write_clip_copy(clip, b"different")
    with pytest.raises(PackageError, match="already exists"):
        write_package(
            PackageContents(other, {"other": True}), outbox, "CAM-LOBBY-0001", PASSWORD, SIGNER
        )
    assert package.read_bytes() == before
    assert leftovers(outbox) == ["CAM-LOBBY-0001.zip"]


def write_clip_copy(clip: Path, extra: bytes) -> Path:
    copy = clip.with_name("other.mp4")
    copy.write_bytes(clip.read_bytes() + extra)
    return copy


def test_missing_video(outbox: Path, tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="cannot read video"):
        write_package(
            PackageContents(tmp_path / "none.mp4", MANIFEST), outbox, "p", PASSWORD, SIGNER
        )
    assert leftovers(outbox) == []


def test_manifest_that_is_not_json(clip: Path, outbox: Path) -> None:
    with pytest.raises(PackageError, match="not plain JSON"):
        write_package(PackageContents(clip, {"when": object()}), outbox, "p", PASSWORD, SIGNER)
    with pytest.raises(PackageError, match="not plain JSON"):
        write_package(PackageContents(clip, {"score": float("nan")}), outbox, "p", PASSWORD, SIGNER)
    assert leftovers(outbox) == []


@pytest.mark.parametrize(
    "name", ["", "a/b", "../up", ".hidden", "x\\y", "nul\0byte", "tab\tname", "n" * 201]
)
def test_name_must_be_a_plain_file_name(clip: Path, outbox: Path, name: str) -> None:
    with pytest.raises(PackageError, match="name"):
        write_package(PackageContents(clip, MANIFEST), outbox, name, PASSWORD, SIGNER)
    assert leftovers(outbox) == []
    assert leftovers(outbox.parent, {"clip.mp4", "outbox"}) == []


@pytest.mark.parametrize("suffix", ["mp4", ".", "./x", ".mp4/", ".toolongsuffix"])
def test_video_suffix_is_checked(clip: Path, outbox: Path, suffix: str) -> None:
    with pytest.raises(PackageError, match="suffix"):
        write_package(PackageContents(clip, MANIFEST, suffix), outbox, "p", PASSWORD, SIGNER)


def test_empty_password_is_refused(clip: Path, outbox: Path) -> None:
    with pytest.raises(PackageError, match="password is empty"):
        write_package(PackageContents(clip, MANIFEST), outbox, "p", b"", SIGNER)
    assert leftovers(outbox) == []


# Real OS failures, made in a forked child so that its limits and user are its own (a fork,
# not a new interpreter: the interpreter may live where another user cannot read it).


def write_in_child(video: Path, outbox: Path, fsize: int = 0, user: int | None = None) -> str:
    """Run write_package in a child; return the PackageError message it got ("" if none)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            if fsize:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            if user is not None:
                os.setgroups([])
                os.setgid(user)
                os.setuid(user)
            try:
                write_package(PackageContents(video, {"k": 1}), outbox, "p", PASSWORD, SIGNER)
                code = 0
            except PackageError as exc:
                os.write(write_end, str(exc).encode())
                code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        pytest.fail(f"child writer died with exit code {code}")
    return message


def test_write_failing_midway_leaves_nothing(clip: Path, outbox: Path) -> None:
    """The kernel refuses writes past a file-size limit (EFBIG), as a full disk would."""
    message = write_in_child(clip, outbox, fsize=clip.stat().st_size // 2)
    assert message.startswith(f"cannot write package into {outbox}: ")
    assert "\n" not in message
    assert PASSWORD.decode() not in message
    assert leftovers(outbox) == []


def test_outbox_not_writable_leaves_nothing(clip: Path, shared_dir: Path) -> None:
    """Root ignores folder modes, so as root the writer runs as nobody instead."""
    video = shared_dir / "clip.mp4"
    shutil.copy(clip, video)
    video.chmod(0o644)
    outbox = shared_dir / "outbox"
    outbox.mkdir()
    outbox.chmod(0o555)
    try:
        message = write_in_child(video, outbox, user=65534 if os.geteuid() == 0 else None)
    finally:
        outbox.chmod(0o755)
    assert message.startswith(f"cannot write package into {outbox}: permission denied")
    assert leftovers(outbox) == []


def test_password_never_in_errors_or_package_bytes(
    package: Path, clip: Path, outbox: Path, tmp_path: Path
) -> None:
    raw = package.read_bytes()
    for form in (PASSWORD, PASSWORD.hex().encode(), PASSWORD.decode().encode("utf-16-le")):
        assert form not in raw

    failures = [
        lambda: write_package(
            PackageContents(clip, MANIFEST), outbox, "CAM-LOBBY-0001", PASSWORD, SIGNER
        ),
        lambda: write_package(
            PackageContents(clip, MANIFEST), tmp_path / "none", "p", PASSWORD, SIGNER
        ),
        lambda: write_package(PackageContents(clip, MANIFEST), outbox, "../x", PASSWORD, SIGNER),
        lambda: write_package(
            PackageContents(tmp_path / "no.mp4", MANIFEST), outbox, "q", PASSWORD, SIGNER
        ),
        lambda: write_package(
            PackageContents(clip, {"x": object()}), outbox, "r", PASSWORD, SIGNER
        ),
        lambda: read_package(package, PASSWORD + b"x", SIGNER.public),
        lambda: check_package(package, PASSWORD + b"x", SIGNER.public),
        lambda: read_package(tmp_path / "none.zip", PASSWORD, SIGNER.public),
    ]
    for failure in failures:
        with pytest.raises(PackageError) as caught:
            failure()
        chain: BaseException | None = caught.value
        while chain is not None:
            text = f"{chain} {chain!r} {chain.args!r}"
            assert PASSWORD.decode() not in text
            assert PASSWORD.decode() + "x" not in text
            chain = chain.__cause__ or chain.__context__


def test_a_package_whose_name_cannot_be_made_durable_is_withdrawn(
    clip: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(folder: Path) -> None:  # fsync of the outbox: an I/O error on the share
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(files, "fsync_folder", failing)
    with pytest.raises(PackageError, match="cannot write package into .*Input/output error"):
        write_package(PackageContents(clip, MANIFEST), outbox, "p", PASSWORD, SIGNER)
    assert leftovers(outbox) == []


def test_a_package_published_meanwhile_by_another_is_left_alone(
    clip: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files.publish

    def racing(staged: Path, target: Path, *, overwrite: bool = False) -> None:
        target.write_bytes(b"another writer's package")  # between the check and the link
        real(staged, target, overwrite=overwrite)

    monkeypatch.setattr(files, "publish", racing)
    with pytest.raises(PackageError, match="already exists"):
        write_package(PackageContents(clip, MANIFEST), outbox, "p", PASSWORD, SIGNER)
    assert leftovers(outbox) == ["p.zip"]
    assert (outbox / "p.zip").read_bytes() == b"another writer's package"


def test_while_written_a_package_has_a_hidden_name_no_zip_reader_takes(
    clip: Path, outbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = files.publish
    staged_names: list[str] = []

    def recording(staged: Path, target: Path, *, overwrite: bool = False) -> None:
        staged_names.append(staged.name)
        assert sorted(outbox.glob("*.zip")) == []  # what an upload agent would pick up
        real(staged, target, overwrite=overwrite)

    monkeypatch.setattr(files, "publish", recording)
    write_package(PackageContents(clip, MANIFEST), outbox, "CAM-1", PASSWORD, SIGNER)
    [staged] = staged_names
    assert staged.startswith(".CAM-1.") and files.OWN_PARTIAL.fullmatch(staged)
    assert leftovers(outbox) == ["CAM-1.zip"]
