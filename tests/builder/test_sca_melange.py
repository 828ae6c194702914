"""SCA checked against melange's own expectations: real melange-built packages from the fixtures
(their .PKGINFO, and melange pkg/sca/sca_test.go's wanted results), and the rules of
pkg/sca/sca.go for links across sibling packages, ``cmd:`` links and shebangs."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanodistro.builder.package import PackageSpec, emit_package, with_sbom
from nanodistro.builder.sca import ScaOptions, analyze, shebang_interpreter
from nanodistro.errors import BuildError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.tarball import TarEntry
from nanodistro.recipe.model import Dependencies

MELANGE = "chainguard-dev+melange/pkg"


def package_entries(third_party: Path, path: str) -> tuple[list[TarEntry], str]:
    """The data entries (SBOM left out: we add our own) and full version of a fixture .apk."""
    apk = read_apk((third_party / MELANGE / path).read_bytes(), where=path)
    entries = [e for e in apk.entries if not e.path.startswith("var/lib/db/sbom")]
    return entries, apk.info.version


def pkginfo(third_party: Path, path: str) -> tuple[list[str], list[str]]:
    info = read_apk((third_party / MELANGE / path).read_bytes(), where=path).info
    return sorted(info.depends), sorted(info.provides)


# --- real melange-built packages: our result equals what melange wrote into .PKGINFO ---------


@pytest.mark.parametrize(
    ("path", "options"),
    [
        # shbang-test.yaml sets no-provides; the shebang deps are melange's TestShbangDeps
        ("sca/testdata/generated/x86_64/shbang-test-1-r1.apk", ScaOptions(no_provides=True)),
        ("linter/testdata/hello-wolfi-2.12.1-r1.apk", ScaOptions()),
        ("sca/testdata/ruby3.2-base64-0.2.0-r2.apk", ScaOptions()),  # TestRubySca
        ("sca/testdata/perl-json-4.11-r0.apk", ScaOptions()),
        ("sca/testdata/generated/x86_64/ld-so-conf-d-test-1-r1.apk", ScaOptions()),
    ],
)
def test_sca_matches_the_pkginfo_melange_wrote(
    third_party: Path, path: str, options: ScaOptions
) -> None:
    entries, version = package_entries(third_party, path)
    result = analyze(entries, full_version=version, options=options)
    assert (result.depends, result.provides) == pkginfo(third_party, path)


def test_shebang_origins_name_the_scripts(third_party: Path) -> None:
    entries, version = package_entries(
        third_party, "sca/testdata/generated/x86_64/shbang-test-1-r1.apk"
    )
    origins = analyze(entries, full_version=version).origins
    assert origins["cmd:bash"] == [
        "usr/bin/bash-straight-up (shebang)",
        "usr/bin/bash-via-env (shebang)",
    ]
    assert origins["cmd:envDashSCmd"] == ["usr/bin/python-via-env (shebang)"]
    assert origins["so:libc.so.6"] == ["usr/bin/hello (DT_NEEDED)"]
    assert origins["so:ld-linux-x86-64.so.2"] == ["usr/bin/hello (PT_INTERP)"]
    assert set(origins) == set(analyze(entries, full_version=version).depends)


# --- melange sca_test.go expectations (before melange drops self-provided deps) --------------


def test_executable_shared_objects_libcap(third_party: Path) -> None:
    """TestExecableSharedObjects: libcap.so.2.69 has PT_INTERP but is still a library."""
    entries, version = package_entries(third_party, "sca/testdata/libcap-2.69-r0.apk")
    result = analyze(entries, full_version=version)
    assert result.provides == ["so:libcap.so.2=2", "so:libpsx.so.2=2"]  # so-ver: not made
    # melange wants so:libcap.so.2 / so:libpsx.so.2 too (from the .so links); the package
    # provides them itself, so removeSelfProvidedDeps drops them
    assert result.depends == ["so:ld-linux-aarch64.so.1", "so:libc.so.6"]


def test_unstable_sonames_aws_c_s3(third_party: Path) -> None:
    """TestUnstableSonames: a non-numeric soname version provides '=0'."""
    entries, version = package_entries(third_party, "sca/testdata/aws-c-s3-0.4.9-r0.apk")
    result = analyze(entries, full_version=version)
    assert result.provides == ["so:libaws-c-s3.so.0unstable=0"]
    assert result.depends == [
        "so:ld-linux-aarch64.so.1",
        "so:libaws-c-auth.so.1.0.0",
        "so:libaws-c-cal.so.1.0.0",
        "so:libaws-c-common.so.1",
        "so:libaws-c-http.so.1.0.0",
        "so:libaws-c-io.so.1.0.0",
        "so:libaws-checksums.so.1.0.0",
        "so:libc.so.6",
    ]


def test_vendored_pkgconfig_neon(third_party: Path) -> None:
    """TestVendoredPkgConfig: libexec is not a library dir, its .pc files are vendored."""
    entries, version = package_entries(third_party, "sca/testdata/neon-4604-r0.apk")
    result = analyze(entries, full_version=version)
    assert result.provides == []
    assert result.depends == [
        "so:ld-linux-aarch64.so.1",
        "so:libc.so.6",
        "so:libecpg.so.6",
        "so:libpgtypes.so.3",
        "so:libpq.so.5",
    ]
    assert result.vendored == [
        "pc:libecpg=4604-r0",
        "pc:libecpg_compat=4604-r0",
        "pc:libpgtypes=4604-r0",
        "pc:libpq=4604-r0",
        "so:libecpg_compat.so.3=3",
    ]


@pytest.mark.parametrize(
    ("content", "want"),
    [
        # melange TestGetShbang's table (its error cases give no dependency here)
        (b"#!/usr/bin/env bash\n", "bash"),
        (b"#!/usr/bin/env python3.12\nwith open...\n", "python3.12"),
        (b"#!/bin/sh\necho hi world\n", None),
        (b"#!/bin/dash\necho hi world\n", "dash"),
        (b"#!/usr/bin/env -S bash -x\necho hi world\n", "bash"),
        (b"#!/usr/bin/env bash -x\necho hi world\n", None),
        (b"cs101 assignment", None),
        (b"#!/usr/bin/perl", "perl"),
        (b"#!   \n", None),
        (b"#!\t\n", None),
        (b"#!\n", None),
        (b"#!/usr/bin/env\n", None),
        (b"#!/usr/bin/python3\n", None),  # ignored like sh, python, awk, luajit
        (b"#!/usr/bin/" + b"x" * 100 + b"\n", "x" * 69),  # only 80 bytes are read
    ],
)
def test_shebang_rules(content: bytes, want: str | None) -> None:
    assert shebang_interpreter(content) == want


# --- links across the packages of one build ---------------------------------------------------


def file(path: str, data: bytes = b"x", mode: int = 0o755) -> TarEntry:
    return TarEntry(path, "file", mode=mode, data=data)


def link(path: str, target: str) -> TarEntry:
    return TarEntry(path, "symlink", mode=0o777, linkname=target)


def dirs(*paths: str) -> list[TarEntry]:
    return [TarEntry(p, "dir", mode=0o755) for p in paths]


@pytest.fixture(scope="module")
def libcap_elf(third_party: Path) -> bytes:
    """A real shared object whose DT_SONAME (libcap.so.2) differs from its file name."""
    entries, _ = package_entries(third_party, "sca/testdata/libcap-2.69-r0.apk")
    return next(e.data for e in entries if e.path == "usr/lib/libcap.so.2.69")


@pytest.mark.parametrize(
    "dev_links",
    [
        [link("usr/lib/libcap.so", "libcap.so.2.69")],  # relative to the link's directory
        [link("usr/lib/libcap.so", "/usr/lib/libcap.so.2.69")],  # absolute: from the root
        [link("usr/lib/libcap.so", "../../usr/lib/./libcap.so.2")],  # through the main's link
        [
            link("lib", "usr/lib"),
            link("usr/lib/libcap.so", "/lib/libcap.so.2.69"),
        ],  # via a dir link
    ],
)
def test_dev_symlink_depends_on_the_siblings_soname(
    libcap_elf: bytes, dev_links: list[TarEntry]
) -> None:
    """zlib-dev's libz.so -> libz.so.1.3.1 (in zlib) needs so:libz.so.1, the target's
    DT_SONAME, which zlib provides; never so:libz.so.1.3.1, which nothing provides."""
    main = [
        *dirs("usr", "usr/lib"),
        link("usr/lib/libcap.so.2", "libcap.so.2.69"),
        file("usr/lib/libcap.so.2.69", libcap_elf),
    ]
    dev = [*dirs("usr", "usr/lib"), *dev_links]
    result = analyze(dev, full_version="2.69-r0", siblings={"libcap": main})
    assert result.depends == ["so:libcap.so.2"]
    assert result.origins == {"so:libcap.so.2": ["usr/lib/libcap.so (dev symlink)"]}
    assert result.warnings == []
    provider = analyze(main, full_version="2.69-r0", siblings={"libcap-dev": dev})
    assert "so:libcap.so.2=2" in provider.provides


def test_dev_symlink_outside_the_build_gives_no_dependency(libcap_elf: bytes) -> None:
    for target in ("libcap.so.2.69", "/usr/lib/libnowhere.so.3", "../../../../etc/x.so"):
        dev = [*dirs("usr", "usr/lib"), link("usr/lib/libcap.so", target)]
        result = analyze(dev, full_version="1-r0", siblings={"other": dirs("usr")})
        assert result.depends == []
        assert "usr/lib/libcap.so" in result.warnings[0]


def test_links_to_executables_in_bin_provide_commands() -> None:
    """busybox's /bin/sh -> /bin/busybox provides cmd:sh (melange only counts regular files,
    and then ignores sh in shebangs because nothing provided it)."""
    busybox = [
        *dirs("bin", "usr", "usr/bin", "usr/share"),
        file("bin/busybox", b"\x7fELF-not-really"),
        link("bin/sh", "/bin/busybox"),
        link("bin/ash", "busybox"),
        link("usr/bin/env", "../../bin/busybox"),
        link("usr/bin/sh2", "/bin/sh"),  # a chain
        file("usr/share/data", b"", mode=0o644),
        link("usr/bin/data", "../share/data"),  # not executable
        link("usr/bin/dangling", "/bin/nothing"),
        link("usr/bin/loop", "loop2"),
        link("usr/bin/loop2", "loop"),
        link("usr/share/sh", "/bin/busybox"),  # not a bin dir
    ]
    result = analyze(busybox, full_version="1.36-r0")
    assert result.provides == [
        "cmd:ash=1.36-r0",
        "cmd:busybox=1.36-r0",
        "cmd:env=1.36-r0",
        "cmd:sh2=1.36-r0",
        "cmd:sh=1.36-r0",
    ]
    # bash-binsh style: the link's target is in the main package
    binsh = [*dirs("bin"), link("bin/sh", "bash")]
    main = [*dirs("bin"), file("bin/bash")]
    assert analyze(binsh, full_version="5-r0", siblings={"bash": main}).provides == ["cmd:sh=5-r0"]
    assert analyze(binsh, full_version="5-r0").provides == []
    assert analyze(busybox, full_version="1", options=ScaOptions(no_commands=True)).provides == []


def test_ld_so_conf_d_of_a_sibling_adds_a_library_dir(third_party: Path, libcap_elf: bytes) -> None:
    """TestLdSoConfD: etc/ld.so.conf.d/*.conf names my/lib/test; a library there provides."""
    conf, _ = package_entries(
        third_party, "sca/testdata/generated/x86_64/ld-so-conf-d-test-1-r1.apk"
    )
    lib = [*dirs("my", "my/lib", "my/lib/test"), file("my/lib/test/libcap.so.2.69", libcap_elf)]
    assert analyze(lib, full_version="1-r1", siblings={"conf": conf}).provides == [
        "so:libcap.so.2=2"
    ]
    assert analyze(lib, full_version="1-r1").vendored == ["so:libcap.so.2=2"]
    # a link named like a conf file is never read (melange: regular files only)
    linked = [*dirs("etc", "etc/ld.so.conf.d"), link("etc/ld.so.conf.d/x.conf", "/etc/ld.so.conf")]
    assert analyze(lib, full_version="1-r1", siblings={"conf": linked}).provides == []


def test_hardlinks_are_scanned_as_the_file_they_name() -> None:
    entries = [
        *dirs("usr", "usr/bin"),
        file("usr/bin/a", b"#!/bin/bash\n"),
        TarEntry("usr/bin/b", "hardlink", mode=0o755, linkname="usr/bin/a"),
    ]
    result = analyze(entries, full_version="1-r0")
    assert result.provides == ["cmd:a=1-r0", "cmd:b=1-r0"]
    assert result.origins == {"cmd:bash": ["usr/bin/a (shebang)", "usr/bin/b (shebang)"]}


# --- emit_package: recipe provides, origins, the in-memory SBOM -------------------------------


def spec(**deps: list[str]) -> PackageSpec:
    return PackageSpec(
        name="tool",
        origin="tool",
        version="1",
        epoch=0,
        arch="x86_64",
        dependencies=Dependencies(**deps),  # type: ignore[arg-type]
    )


def emit(package: PackageSpec, entries: list[TarEntry]) -> tuple[list[str], dict[str, list[str]]]:
    built = emit_package(
        package,
        entries,
        source_date_epoch=1_700_000_000,
        sources=[],
        recipe_path="tool.yaml",
        recipe_hash="0" * 64,
        key=None,
    )
    return built.info.depends, built.sca.origins


def test_recipe_provides_satisfy_automatic_depends() -> None:
    entries = [*dirs("usr", "usr/bin"), file("usr/bin/tool", b"#!/bin/bash\n")]
    depends, origins = emit(spec(), entries)
    assert depends == ["cmd:bash"]
    assert origins == {"cmd:bash": ["usr/bin/tool (shebang)"]}
    depends, origins = emit(spec(provides=["cmd:bash=5.2"], runtime=["so:libx.so.1"]), entries)
    assert depends == ["so:libx.so.1"]
    assert origins == {}


def test_sbom_entry_added_in_memory_with_parent_directories() -> None:
    entries = with_sbom(
        [*dirs("var"), file("var/x", b"", 0o600)],
        "var/lib/db/sbom/a.json",
        b"{}",
        mtime=7,
        where="w",
    )
    assert [(e.path, e.type, oct(e.mode), e.mtime) for e in entries if e.path != "var/x"] == [
        ("var", "dir", "0o755", 0),  # the tree's own directory is kept as it was
        ("var/lib", "dir", "0o755", 7),
        ("var/lib/db", "dir", "0o755", 7),
        ("var/lib/db/sbom", "dir", "0o755", 7),
        ("var/lib/db/sbom/a.json", "file", "0o644", 7),
    ]
    assert [e.path for e in entries].index("var/lib") < [e.path for e in entries].index("var/x")


@pytest.mark.parametrize(
    ("placed", "named"),
    [
        (link("var/lib/db/sbom", "/tmp"), "var/lib/db/sbom"),
        (link("var", "/"), "var"),
        (file("var/lib", b""), "var/lib"),
        (file("var/lib/db/sbom/a.json", b"mine"), "var/lib/db/sbom/a.json"),
    ],
)
def test_something_in_the_sboms_way_is_an_error(placed: TarEntry, named: str) -> None:
    parents = [d for d in ("var", "var/lib", "var/lib/db", "var/lib/db/sbom") if d < placed.path]
    with pytest.raises(BuildError) as error:
        with_sbom([*dirs(*parents), placed], "var/lib/db/sbom/a.json", b"{}", mtime=0, where="out")
    assert error.value.where == f"out/{named}"


# --- a real build: the -dev link and a bin link across subpackages -----------------------------

SPLIT_RECIPE = """package:
  name: libz
  version: "1.2.13"
  epoch: 0
  description: a library whose file name is not its soname, as zlib's
  copyright:
    - license: MIT
environment:
  contents:
    packages: [build-base, busybox]
pipeline:
  - runs: |
      d=${{targets.destdir}}
      mkdir -p $d/usr/lib $d/usr/include $d/usr/bin
      printf 'int z(void) { return 1; }\\n' > z.c
      cc -shared -fPIC -Wl,-soname,libz.so.1 -o $d/usr/lib/libz.so.1.2.13 z.c
      ln -s libz.so.1.2.13 $d/usr/lib/libz.so.1
      ln -s libz.so.1.2.13 $d/usr/lib/libz.so
      echo 'int z(void);' > $d/usr/include/z.h
      printf '#!/bin/bash\\necho hi\\n' > $d/usr/bin/zhello
      chmod 755 $d/usr/bin/zhello
subpackages:
  - name: libz-dev
    pipeline:
      - uses: split/dev
  - name: libz-alias
    pipeline:
      - runs: |
          mkdir -p ${{targets.subpkgdir}}/usr/bin
          ln -s zhello ${{targets.subpkgdir}}/usr/bin/zalias
"""


@pytest.mark.slow
def test_built_dev_package_depends_on_the_soname_its_sibling_provides(tmp_path: Path) -> None:
    from nanodistro.builder.orchestrate import BuildConfig, build_recipe

    path = tmp_path / "libz.yaml"
    path.write_text(SPLIT_RECIPE)
    result = build_recipe(
        path,
        BuildConfig(
            source_cache=tmp_path / "cache", workspace_dir=tmp_path / "ws", run_tests=False
        ),
    )
    built = {p.info.name: p for p in result.packages}
    main, dev, alias = built["libz"], built["libz-dev"], built["libz-alias"]
    assert "so:libz.so.1=1" in main.info.provides
    assert "cmd:zhello=1.2.13-r0" in main.info.provides
    assert main.sca.origins["cmd:bash"] == ["usr/bin/zhello (shebang)"]
    # was so:libz.so.1.2.13, which nothing provides
    assert dev.info.depends == ["so:libz.so.1"]
    assert dev.sca.origins == {"so:libz.so.1": ["usr/lib/libz.so (dev symlink)"]}
    # a link in a bin dir to the sibling's executable provides the command
    assert alias.info.provides == ["cmd:zalias=1.2.13-r0"]
    assert not [w for w in result.warnings if "libz.so" in w]
