"""The build environment models: the apko image configuration a recipe's build runs in.

``environment:`` (and ``test.environment``) holds contents, accounts, paths and the rest of an
apko ``ImageConfiguration`` as melange decodes it, without apko's ``Validate`` rules (the comment
below says why these do not reuse :mod:`nanodistro.imageconfig.model`). :func:`with_melange_defaults`
adds the ``build`` user/group and the default environment variables melange adds at parse time.
"""

from __future__ import annotations

from pydantic import Field

from nanodistro.recipe.fields import Text, TextMap, _Model

__all__ = [
    "MELANGE_DEFAULT_ENV",
    "Accounts",
    "BaseImage",
    "BuildEnvironment",
    "CertificateEntry",
    "Certificates",
    "Contents",
    "Entrypoint",
    "Group",
    "Layering",
    "PathMutation",
    "User",
    "with_melange_defaults",
]


# --- build environment (an apko ImageConfiguration) ---------------------------------------------
#
# These mirror nanodistro.imageconfig.model on purpose; reusing those classes here was tried and
# changes what a recipe means. The imageconfig classes carry apko's Validate rules, which melange
# does not apply when it decodes a recipe (yaml.v3 into apko's structs, no Validate call):
#   - a user without a uid, or with uid 0, and a paths[].type outside apko's five names, load today
#     and would become errors;
#   - an empty contents.packages entry would be an error reported at `packages`, not `packages[N]`;
#   - their ValueError messages reach users through _message() as "Value error, ...";
#   - paths[].permissions: the recipe loader hands every scalar over as source text, and
#     imageconfig's octal parser reads the text "0755" as 0o755 where this model reads 755 (yaml.v3
#     gives 0o755; nothing consumes recipe paths today, so the difference is latent);
#   - imageconfig accepts contents.runtime_keyring, which this model rejects as an unknown key.
# Speed was not the obstacle (bench/bench_recipe_load.py: 0.99 s vs 1.11 s for the extrapolated
# corpus); sharing needs those rules moved out of the imageconfig models first.


class BaseImage(_Model):
    """apko ``contents.baseimage``."""

    image: Text = ""
    apkindex: Text = ""


class Contents(_Model):
    """apko ``contents``: where packages come from and which to install."""

    repositories: list[Text] = Field(default_factory=list)
    build_repositories: list[Text] = Field(default_factory=list, alias="build_repositories")
    runtime_repositories: list[Text] = Field(default_factory=list, alias="runtime_repositories")
    keyring: list[Text] = Field(default_factory=list)
    packages: list[Text] = Field(default_factory=list)
    baseimage: BaseImage | None = None


class User(_Model):
    """An account in the build guest."""

    username: Text = ""
    uid: int | None = None
    gid: int | None = None
    shell: Text = ""
    homedir: Text = ""


class Group(_Model):
    """A group in the build guest."""

    groupname: Text = ""
    gid: int | None = None
    members: list[Text] = Field(default_factory=list)


class Accounts(_Model):
    """apko ``accounts``."""

    run_as: Text = ""
    users: list[User] = Field(default_factory=list)
    groups: list[Group] = Field(default_factory=list)


class Entrypoint(_Model):
    """apko ``entrypoint`` (accepted for completeness; builds ignore it)."""

    type: Text = ""
    command: Text = ""
    shell_fragment: Text = ""
    services: TextMap = Field(default_factory=dict)


class PathMutation(_Model):
    """apko ``paths`` entry."""

    path: Text = ""
    type: Text = ""
    uid: int | None = None
    gid: int | None = None
    permissions: int | None = None
    source: Text = ""
    recursive: bool = False


class Layering(_Model):
    """apko ``layering``."""

    strategy: Text = ""
    budget: int | None = None


class CertificateEntry(_Model):
    """apko ``certificates.additional`` entry."""

    name: Text = ""
    content: Text = ""


class Certificates(_Model):
    """apko ``certificates``."""

    additional: list[CertificateEntry] = Field(default_factory=list)
    providers: list[Text] = Field(default_factory=list)


class BuildEnvironment(_Model):
    """``environment:`` (and ``test.environment``): the apko image the build runs in."""

    contents: Contents = Field(default_factory=Contents)
    entrypoint: Entrypoint | None = None
    cmd: Text = ""
    stop_signal: Text = ""
    work_dir: Text = ""
    accounts: Accounts = Field(default_factory=Accounts)
    archs: list[Text] = Field(default_factory=list)
    environment: TextMap = Field(default_factory=dict)
    paths: list[PathMutation] = Field(default_factory=list)
    vcs_url: Text = ""
    annotations: TextMap = Field(default_factory=dict)
    include: Text = ""
    volumes: list[Text] = Field(default_factory=list)
    layering: Layering | None = None
    certificates: Certificates | None = None


# Parse-time defaults melange adds (MEL:pkg/config/config.go ParseConfiguration).
MELANGE_DEFAULT_ENV = {
    "HOME": "/home/build",
    "GOPATH": "/home/build/.cache/go",
    "GOMODCACHE": "/var/cache/melange/gomodcache",
    "UV_CACHE_DIR": "/var/cache/melange/uv",
    "PIP_CACHE_DIR": "/var/cache/melange/pip",
    "COMPOSER_CACHE_DIR": "/var/cache/melange/composer",
    "npm_config_cache": "/var/cache/melange/npm",
}


def with_melange_defaults(environment: BuildEnvironment) -> BuildEnvironment:
    """A copy with the ``build`` user/group (uid/gid 1000) and default env vars melange adds."""
    env = environment.model_copy(deep=True)
    if not any(g.groupname == "build" for g in env.accounts.groups):
        env.accounts.groups.append(Group(groupname="build", gid=1000, members=["build"]))
    if not any(u.username == "build" for u in env.accounts.users):
        env.accounts.users.append(User(username="build", uid=1000, gid=1000))
    for key, value in MELANGE_DEFAULT_ENV.items():
        if not env.environment.get(key):
            env.environment[key] = value
    return env
