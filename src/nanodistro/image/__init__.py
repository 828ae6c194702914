"""Image assembly (apko-compatible): config -> packages -> root -> layers -> OCI layout.

Public API::

    from nanodistro.imageconfig import load_config
    from nanodistro.image.build import BuildRequest, build_image, write_result, lock_image

    request = BuildRequest(loaded=load_config("img.yaml"), archs=["amd64"],
                           repositories=[], keyring_paths=[], lock=None,
                           source_date_epoch=0, cache_dir=None, ref_name="latest")
    result = build_image(request, progress=print)   # BuildResult: .digest, .images, .blobs, .sboms
    write_result(result, Path("out"))               # OCI layout dir, or oci-archive if "*.tar"
    lock = lock_image(request)                      # LockFile; lock.to_bytes() -> apko lock JSON

    from nanodistro.image.lock import read_lock      # read_lock(path) -> LockFile
    from nanodistro.image.diff import load_image_packages, diff_images
    diff_images(load_image_packages("old"), load_image_packages("new.tar"))

    from nanodistro.image.oci_layout import Layout   # Layout(dir|tar).images() / .blob(digest)

Modules: ``apkfile`` (verified package view), ``rootfs`` (in-memory root), ``install`` (apk db,
accounts, paths), ``layers`` (deterministic tar+gzip, origin layering), ``oci_layout``,
``sbom`` (SPDX 2.3), ``lock``, ``diff``, ``build`` (the pipeline).
"""
