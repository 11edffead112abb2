"""``denoise serve``: a Flask app that takes uploads, runs them through the CLI's runner, and serves the results.

Safe by default: request bodies over ``max_bytes`` are refused (413) from the Content-Length header before they are
read; every image is checked (pixel count from the header before decoding, single frame, supported format) before it
is queued; no name or path the client sends is ever used as a file path (files are stored under names the server
makes; the client's name is only shown and offered as the download name); job ids are unguessable tokens.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import click
import numpy as np
from flask import Flask, Response, abort, jsonify, request, send_file

from ...batch.jobs import bare_stem
from ...core import imageio
from ...core.errors import DenoiseError
from ...core.imageio import Image
from ...methods import METHODS
from ...methods.psf import MODELS as PSF_MODELS
from ..options import NO_PSF, PsfSpec
from .work import JobQueue, Upload, WebJob

STATIC = Path(__file__).resolve().parent / "static"
#: The methods the page offers.
PAGE_METHODS = ("tv", "zsn2n", "deblur")


def method_schema(commands: dict, defaults: dict) -> dict:
    """For each method, its settings as the page shows them, from the click options the CLI uses (one schema):
    name, kind (choice, flag, number, integer, auto-or-number, auto-or-integer), choices, default, help."""
    schema = {}
    for name in PAGE_METHODS:
        options = {param.name: param for param in commands[name].params}
        fields = []
        for setting in (s for s in METHODS[name].settings if s != "seed"):
            param = options[setting]
            fields.append({"name": setting, "label": param.opts[-1], "kind": _kind(param),
                           "choices": list(getattr(param.type, "choices", []) or []),
                           "default": defaults[name].get(setting, param.default), "help": param.help or ""})
        schema[name] = fields
    return schema


def _kind(param: click.Parameter) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    if isinstance(param.type, PsfSpec):
        return "text"
    if isinstance(param.type, click.Choice):
        return "choice"
    type_name = getattr(param.type, "name", "")
    if type_name.startswith("auto|"):
        return "auto-or-integer" if "INTEGER" in type_name else "auto-or-number"
    return "integer" if isinstance(param.type, click.types.IntParamType) else "number"


def parse_settings(commands: dict, defaults: dict, method: str, form) -> tuple[dict, int]:
    """The method's settings and the seed from the form, converted and validated by the CLI's own option types;
    missing ones take the configured defaults. Raises DenoiseError with the CLI's words."""
    options = {param.name: param for param in commands[method].params}
    values = {}
    for setting in dict.fromkeys(METHODS[method].settings + ("seed",)):
        param = options[setting]
        raw = form.get(setting)
        if raw is None or raw == "":
            value = defaults[method].get(setting, param.default)
            if value is None and isinstance(param.type, PsfSpec):
                raise DenoiseError(NO_PSF)
        elif getattr(param, "is_flag", False):
            value = raw.lower() in ("1", "true", "on", "yes")
        elif isinstance(param.type, PsfSpec) and raw != "auto" and raw.partition(":")[0] not in PSF_MODELS:
            # a file name would be a path on this machine: the page takes models only
            raise DenoiseError(f"{param.opts[-1]}: give 'auto' or a model ({', '.join(m + ':' for m in PSF_MODELS)}"
                               "...); PSF files are for the command line")
        else:
            try:
                value = param.type.convert(raw, param, None)
            except click.BadParameter as exc:
                raise DenoiseError(f"{param.opts[-1]}: {exc.message}") from None
        values[setting] = value
    seed = int(values["seed"] or 0)
    return {name: values[name] for name in METHODS[method].settings}, seed


def create_app(config: dict, commands: dict, defaults: dict, root: Path) -> Flask:
    """The app. ``config``: the serve settings (max_bytes, max_pixels, workers, queue_size, keep_seconds, device);
    ``commands``/``defaults``: the CLI's click commands and their configured defaults; ``root``: a private folder."""
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(config["max_bytes"])
    work = JobQueue(root, config["device"], int(config["workers"]), int(config["queue_size"]),
                    float(config["keep_seconds"]))
    app.extensions["denoise_queue"] = work
    schema = method_schema(commands, defaults)

    @app.get("/")
    def index():
        return send_file(STATIC / "index.html")

    @app.get("/api/settings")
    def settings_schema():
        return jsonify({"methods": schema, "max_bytes": int(config["max_bytes"]),
                        "max_pixels": int(config["max_pixels"])})

    @app.post("/api/jobs")
    def submit():
        method = request.form.get("command", "")
        if method not in schema:
            return _error(f"unknown method {method!r}: choose one of {', '.join(schema)}", 400)
        files = request.files.getlist("images")
        if not files:
            return _error("no images: choose one or more image files", 400)
        references = {_pairing_key(f.filename): f for f in request.files.getlist("references") if f.filename}
        if len(files) == 1 and len(references) == 1:  # one image, one reference: they go together
            references = {_pairing_key(files[0].filename): next(iter(references.values()))}
        try:
            settings, seed = parse_settings(commands, defaults, method, request.form)
            uploads = [_checked_upload(f, references, int(config["max_pixels"])) for f in files]
        except DenoiseError as exc:
            return _error(str(exc), 400)
        job = work.submit(method, settings, seed, uploads)
        if job is None:
            return _error("busy: the queue is full, try again in a moment", 503)
        return jsonify({"id": job.id}), 202

    @app.get("/api/jobs/<job_id>")
    def status(job_id: str):
        return jsonify(_job(job_id).view())

    @app.get("/api/jobs/<job_id>/images/<int:index>/<which>")
    def image(job_id: str, index: int, which: str):
        job = _job(job_id)
        path = _file(job, index, which)
        if request.args.get("preview"):  # what a browser can show: 8-bit PNG of any input
            preview = imageio.read_image(path)
            pixels = preview.pixels.clamp(0, 1)
            data = imageio.encode_image(Image(pixels, None, np.dtype(np.uint8), "PNG"), "PNG")
            return Response(data, mimetype="image/png")
        name = job.names[index] if which == "input" else job.records[index]["output"]
        return send_file(path, as_attachment=True, download_name=name)

    @app.get("/api/jobs/<job_id>/report.json")
    def report(job_id: str):
        job = _done(_job(job_id))
        body = json.dumps({"images": job.records, "summary": job.summary}, indent=2, allow_nan=False, default=str)
        return Response(body, mimetype="application/json",
                        headers={"Content-Disposition": "attachment; filename=report.json"})

    @app.get("/api/jobs/<job_id>/results.zip")
    def everything(job_id: str):
        job = _done(_job(job_id))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for index, record in enumerate(job.records):
                if record["status"] == "done":
                    archive.write(_file(job, index, "output"), _unique(archive, record["output"]))
            archive.writestr("report.json", json.dumps({"images": job.records, "summary": job.summary},
                                                       indent=2, allow_nan=False, default=str))
        return Response(buffer.getvalue(), mimetype="application/zip",
                        headers={"Content-Disposition": "attachment; filename=denoised.zip"})

    @app.errorhandler(413)
    def too_large(_):
        return _error(f"the upload is larger than the server's limit of {int(config['max_bytes'])} bytes", 413)

    @app.errorhandler(404)
    def not_found(_):
        return _error("no such job or file (results are deleted after a while)", 404)

    def _job(job_id: str) -> WebJob:
        job = work.get(job_id)
        if job is None:
            abort(404)
        return job

    return app


def _done(job: WebJob) -> WebJob:
    if job.status != "done":
        abort(404)
    return job


def _file(job: WebJob, index: int, which: str) -> Path:
    """A job's input or output by its index: a path the server made, never one the client named."""
    if which not in ("input", "output") or not 0 <= index < len(job.names):
        abort(404)
    folder = job.folder / ("in" if which == "input" else "out")
    found = sorted(folder.glob(f"{index:04d}.*"))
    if not found:
        abort(404)
    return found[0]


def _checked_upload(storage, references: dict, max_pixels: int) -> Upload:
    name = _display_name(storage.filename)
    data = storage.read()
    image = imageio.decode_image(data, name, max_pixels)
    if image.format not in set(imageio.FORMATS.values()):
        raise DenoiseError(f"{name}: {image.format} files are not supported (PNG, JPEG, TIFF, BMP or WebP)")
    reference = references.get(_pairing_key(storage.filename))
    reference_data = None
    if reference is not None:
        reference_data = reference.read()
        imageio.decode_image(reference_data, f"reference {name}", max_pixels)
    return Upload(name, data, image, reference_data)


def _pairing_key(filename) -> str:
    """How an image finds its reference, as on the command line: by stem, less a ``.noisy``/``.denoised`` marker."""
    return bare_stem(Path(_display_name(filename)).stem)


def _display_name(filename) -> str:
    """The client's file name, only for display and downloads: its last part, printable, at most 100 characters."""
    text = str(filename or "image").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if ch.isprintable() and ch not in "\x00\"")
    return text[-100:] or "image"


def _unique(archive: zipfile.ZipFile, name: str) -> str:
    names = set(archive.namelist())
    candidate, count = name, 1
    while candidate in names:
        count += 1
        stem, dot, extension = name.rpartition(".")
        candidate = f"{stem}-{count}.{extension}" if dot else f"{name}-{count}"
    return candidate


def _error(message: str, code: int):
    return jsonify({"error": message}), code
