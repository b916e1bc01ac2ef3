"""Salt states of the bpfunits formula (packaging/salt/bpfunits): a verified unit set and the drift check.

``bpfunits.units`` stages the files the formula rendered, runs ``bpfunits verify`` on the whole
staged set (ordering needs every unit at once) and only then writes them into the units folder,
removing what is no longer listed: a set that does not verify never reaches the live folder.
With ``test=True`` it stages and verifies all the same (in a scratch folder), and reports each
file's diff and ``bpfunits plan`` of the staged set: the chains that applying it would change.

``bpfunits.plan`` is ``bpfunits plan --detailed-exitcode``: exit 2 (a hook does not run its units'
chain) is a change, exit 1 (a unit fails to load or verify in the kernel) a failure.

Runs in Salt's own Python, which need not be bpfunits': it calls the ``bpfunits`` program.
"""

import difflib
import os
import re
import shutil
import subprocess
import tempfile

# bpfunits plan --detailed-exitcode: a hook's chain differs from its units'.
PLAN_CHANGES = 2

# NAME.unit, NAME.yaml and NAME.d/DROPIN.conf, NAME as in the unit language.
_NAME = r"[A-Za-z0-9_.@-]+"
_FILE = re.compile(rf"^{_NAME}\.(unit|yaml)$|^{_NAME}\.d/{_NAME}\.conf$")


def _args(units_dirs, config):
    args = [arg for folder in units_dirs for arg in ("--units-dir", folder)]
    return args + (["--config", config] if config else [])


def _run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, (done.stdout + done.stderr).strip()


def _owned(folder):
    """The files of `folder` that the formula owns: units, and drop-ins in NAME.d folders."""
    found = []
    if not os.path.isdir(folder):
        return found
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry.endswith((".unit", ".yaml")) and not entry.startswith("."):
            found.append(entry)
        elif entry.endswith(".d") and os.path.isdir(path) and not os.path.islink(path):
            found += [f"{entry}/{name}" for name in sorted(os.listdir(path))
                      if name.endswith(".conf") and not name.startswith(".")]
    return found


def _read(path):
    if os.path.islink(path):
        return "-> " + os.readlink(path) + "\n"
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _diff(path, old, new):
    """A unified diff, as `--diff` shows; a mask (empty file) has no lines to show."""
    if new == "":
        return "mask (empty file)"
    return "".join(difflib.unified_diff((old or "").splitlines(True), (new or "").splitlines(True),
                                        "/dev/null" if old is None else path,
                                        "/dev/null" if new is None else path)) or "removed (a mask)"


def _write(path, content):
    """Replace `path` with `content` in one rename, so the daemon never reads half a unit."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _remove(folder, relpath):
    path = os.path.join(folder, relpath)
    os.unlink(path)
    parent = os.path.dirname(path)
    if parent != folder and not os.listdir(parent):
        os.rmdir(parent)


def units(name, files, purge=True, executable="/usr/bin/bpfunits", extra_units_dirs=(), config="",
          plan=True, plan_args=()):
    """The units folder `name` holds exactly `files` ([[relative path, content], ...]), verified.

    Without purge, files not listed are left alone (and verified along with the set). With plan,
    a dry run also shows `bpfunits plan` of the staged set."""
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    paths = [path for path, _ in files]
    bad = [path for path in paths if not _FILE.match(path)]
    # A unit, in either syntax, or a mask: one file per name.
    names = [path.rsplit(".", 1)[0] for path in paths]
    twice = sorted({path for path in paths if names.count(path.rsplit(".", 1)[0]) > 1})
    if bad or twice:
        ret["comment"] = ("unit names must be unique and use letters, digits, _ . @ - only: "
                          + ", ".join(bad or twice))
        return ret
    wanted = dict(files)
    present = _owned(name)
    removed = [path for path in present if path not in wanted] if purge else []

    staging = tempfile.mkdtemp(prefix="bpfunits-staging.")
    try:
        for path, content in files:
            _write(os.path.join(staging, path), content)
        # Without purge, the units that stay in the folder are part of the set (below the staged ones).
        extra = _args(([] if purge or not os.path.isdir(name) else [name]) + list(extra_units_dirs), config)
        rc, out = _run([executable, "verify", "--units-dir", staging, *extra])
        if rc != 0:
            ret["comment"] = f"bpfunits verify of the staged set failed; {name} is unchanged:\n{out}"
            return ret

        diffs = {}
        for path, content in files:
            old = _read(os.path.join(name, path))
            if old != content:
                diffs[path] = _diff(path, old, content)
        diffs.update({path: _diff(path, _read(os.path.join(name, path)), None) for path in removed})

        if __opts__["test"]:
            rc, out = (_run([executable, "plan", "--detailed-exitcode", "--units-dir", staging, *extra,
                             *plan_args]) if plan else (0, ""))
            if rc not in (0, PLAN_CHANGES):
                ret["comment"] = f"bpfunits plan of the staged set failed:\n{out}"
                return ret
            if rc == PLAN_CHANGES:
                diffs["plan"] = out
            ret["changes"] = diffs
            ret["result"] = None if diffs else True
            ret["comment"] = f"{len(files)} files verified; " + (f"would change {name}" if diffs
                                                                  else f"{name} is as wanted")
            return ret
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    for path, content in files:
        if path in diffs:
            _write(os.path.join(name, path), content)
    for path in removed:
        _remove(name, path)
    ret["changes"] = diffs
    ret["result"] = True
    ret["comment"] = f"{len(files)} files verified; " + (f"{name} updated" if diffs else f"{name} is as wanted")
    return ret


def plan(name, executable="/usr/bin/bpfunits", extra_units_dirs=(), config="", plan_args=()):
    """The kernel runs the chains of the units in folder `name`; a hook that does not is a change."""
    rc, out = _run([executable, "plan", "--detailed-exitcode", "--units-dir", name,
                    *_args(extra_units_dirs, config), *plan_args])
    ret = {"name": name, "changes": {}, "result": rc in (0, PLAN_CHANGES), "comment": out}
    if rc == PLAN_CHANGES:
        ret["changes"] = {"plan": out}
        ret["comment"] = "some hooks do not run their units' chains"
        if __opts__["test"]:
            ret["result"] = None
    elif rc == 0:
        ret["comment"] = "every hook runs its units' chain"
    return ret
