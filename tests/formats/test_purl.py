"""purls: one ``pkg:apk/<distro>/<name>@<version>?arch=<arch>`` form, as apko writes it."""

from __future__ import annotations

import pytest

from nanodistro.errors import FormatError
from nanodistro.formats.purl import ApkPurl, apk_purl, distro_name, parse_apk_purl


def test_apk_purl_form() -> None:
    assert apk_purl("nanodistro-examples", "lua5.4", "5.4.7-r0", "x86_64") == (
        "pkg:apk/nanodistro-examples/lua5.4@5.4.7-r0?arch=x86_64"
    )
    # the apk type is case-insensitive: packageurl lowercases namespace and name
    assert apk_purl("Wolfi", "Sed", "4.9-r8", "aarch64") == "pkg:apk/wolfi/sed@4.9-r8?arch=aarch64"


def test_apk_purl_encodes_and_round_trips() -> None:
    text = apk_purl("nanodistro", "libstdc++", "1.0_rc1+git-r2", "x86_64")
    assert "+" not in text  # percent-encoded
    assert parse_apk_purl(text) == ApkPurl("nanodistro", "libstdc++", "1.0_rc1+git-r2", "x86_64")
    assert parse_apk_purl(text).to_string() == text


def test_melange_distro_qualifier_compares_equal() -> None:
    # melange writes ?arch=..&distro=..; it names the same package as our form
    melange = parse_apk_purl("pkg:apk/wolfi/sed@4.9-r8?arch=x86_64&distro=wolfi")
    assert melange.key() == parse_apk_purl("pkg:apk/wolfi/sed@4.9-r8?arch=x86_64").key()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkg:apk/busybox@1.36.1-r0?arch=x86_64", "no distro"),
        ("pkg:apk/nanodistro/busybox?arch=x86_64", "no version"),
        ("pkg:apk/nanodistro/busybox@1.36.1-r0", "no arch"),
        ("pkg:deb/debian/busybox@1.36.1?arch=amd64", "expected a pkg:apk purl"),
        ("busybox-1.36.1-r0", "not a package URL"),
    ],
)
def test_parse_apk_purl_refuses(text: str, message: str) -> None:
    with pytest.raises(FormatError, match=message) as error:
        parse_apk_purl(text, where="sbom.json")
    assert "sbom.json" in str(error.value)


def test_apk_purl_needs_every_part() -> None:
    with pytest.raises(FormatError, match="needs distro, name, version and arch"):
        apk_purl("nanodistro", "busybox", "", "x86_64")


def test_distro_name() -> None:
    assert distro_name("Nanodistro-Examples") == "nanodistro-examples"
    assert distro_name(None) == "nanodistro"
    assert distro_name("") == "nanodistro"
