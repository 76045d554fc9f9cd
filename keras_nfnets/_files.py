"""Where the package writes over a path that exists: what it may replace, and how.

The rule everywhere (presets, run directories, exports): nothing keras_nfnets did not write is
deleted or replaced. A target is written next to its place and renamed into it, so a failure
leaves the old content (or nothing), and a directory that is replaced keeps its permissions.
"""

import os
import shutil
import stat
import tempfile


def protected_directory(path):
    """Why ``path`` may never be a target that is replaced as a whole (a filesystem root, a mount
    point or the home directory), or ``None``."""
    real = os.path.realpath(os.fspath(path))
    if os.path.dirname(real) == real:
        return "a filesystem root"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "the home directory"
    if os.path.ismount(real):
        return "a mount point"
    return None


def contains(directory, path):
    """Whether ``path`` is ``directory`` or lies inside it (links resolved)."""
    directory, path = os.path.realpath(os.fspath(directory)), os.path.realpath(os.fspath(path))
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def entries(directory):
    """Every file and folder under ``directory``, as paths relative to it (sorted)."""
    found = []
    for root, folders, files in os.walk(directory):
        relative = os.path.relpath(root, directory)
        for name in folders + files:
            found.append(os.path.normpath(os.path.join(relative, name)))
    return sorted(found)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_directory_mode():
    """The mode ``mkdir`` would give a new folder here (0o777 less the umask)."""
    return 0o777 & ~_umask()


def new_file_mode():
    """The mode ``open(..., "w")`` would give a new file here (0o666 less the umask)."""
    return 0o666 & ~_umask()


def staging_directory(target):
    """A new, empty folder next to ``target`` (same filesystem: it is renamed into place)."""
    parent = os.path.dirname(os.path.abspath(os.fspath(target)))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(target))}.partial-", dir=parent)


def move_directory_into_place(staging, target, owned=None, keep=()):
    """Rename ``staging`` to ``target``. An existing ``target`` must hold only the ``owned``
    entries (relative paths, what keras_nfnets wrote there) and the top-level entries named in
    ``keep`` (the user's own, e.g. a model card): those move, untouched, into the new folder, which
    must not have them; the old folder is moved aside, its owned files deleted after the rename,
    and its mode carried over. Anything else found in it at that moment stops the replacement with
    the old folder left in place."""
    target = os.fspath(target)
    if not os.path.isdir(target):
        os.chmod(staging, new_directory_mode())
        os.replace(staging, target)
        return
    kept = [name for name in os.listdir(target) if name in set(keep)]
    foreign = [entry for entry in entries(target) if entry not in set(owned or ())
               and entry.split(os.sep)[0] not in kept]
    clash = [name for name in kept if os.path.lexists(os.path.join(staging, name))]
    if foreign or clash:
        raise FileExistsError(f"{target!r} holds {(foreign + clash)[:3]} that keras_nfnets did not write there; nothing "
                              "was replaced: choose a new directory, or move those files out.")
    os.chmod(staging, stat.S_IMODE(os.stat(target).st_mode))
    aside = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(target))}.old-",
                             dir=os.path.dirname(os.path.abspath(target)))
    os.rmdir(aside)
    os.replace(target, aside)
    moved = []
    try:
        for name in kept:  # the user's files join the new folder (same file system: a rename, nothing rewritten)
            os.replace(os.path.join(aside, name), os.path.join(staging, name))
            moved.append(name)
        os.replace(staging, target)
    except BaseException:
        for name in moved:
            os.replace(os.path.join(staging, name), os.path.join(aside, name))
        os.replace(aside, target)
        raise
    remove_owned(aside, owned or ())


def remove_owned(directory, owned):
    """Delete the ``owned`` entries of ``directory`` (files first, then folders, deepest first),
    then the folder itself if that left it empty: never anything else."""
    for entry in sorted(owned, key=lambda e: e.count(os.sep), reverse=True):
        path = os.path.join(directory, entry)
        if os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
    if os.path.isdir(directory) and not os.listdir(directory):
        os.rmdir(directory)


def write_file_into_place(target, write, replace=False):
    """``write(temporary_path)``, then rename the file to ``target``, which must not exist unless
    ``replace`` (a file of keras_nfnets' own, e.g. a run's model.keras): a failure leaves the old
    file or nothing, never half of one. The new file gets the mode a new file gets here."""
    target = os.fspath(target)
    if not replace:
        check_new_path(target)
    parent = os.path.dirname(os.path.abspath(target))
    suffix = os.path.splitext(target)[1]
    descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.partial-", suffix=suffix, dir=parent)
    os.close(descriptor)
    try:
        write(temporary)
        os.chmod(temporary, new_file_mode())  # mkstemp's file is private
        if not replace:
            check_new_path(target)  # nothing appeared there meanwhile
        os.replace(temporary, target)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


def check_new_path(target, directory_ok_if_empty=False):
    """Refuse a ``target`` that exists (an empty folder is allowed when ``directory_ok_if_empty``)."""
    target = os.fspath(target)
    if not os.path.lexists(target):
        return
    if directory_ok_if_empty and os.path.isdir(target) and not os.path.islink(target) and not os.listdir(target):
        return
    kind = "folder" if os.path.isdir(target) else "file"
    raise FileExistsError(f"{target!r} exists (a {kind}); keras_nfnets writes exports only to new paths, never over "
                          "a file: choose another path, or remove it first.")
