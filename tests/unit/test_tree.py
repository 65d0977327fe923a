"""Trees of any depth are removed and walked without recursion, never through a symlink."""

from __future__ import annotations

import os

from engine.fs import tree


def _deep(top, depth: int) -> None:
    """A chain of `depth` directories under `top`, made by descriptor (its path passes PATH_MAX)."""
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
            f.write("x")
        sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = sub
    os.close(fd)


def test_a_tree_deeper_than_the_recursion_limit_and_path_max_goes(tmp_path):
    _deep(tmp_path / "deep", 3000)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("kept")
    os.symlink(outside, tmp_path / "deep" / "link")
    tree.remove(tmp_path / "deep")
    assert not (tmp_path / "deep").exists()
    assert (outside / "keep").read_text() == "kept"  # the symlink went, not what it names
    tree.remove(tmp_path / "never-there")
    (tmp_path / "file").write_text("")
    tree.remove(tmp_path / "file")
    assert not (tmp_path / "file").exists()


def test_walk_goes_as_deep_as_paths_go(tmp_path):
    _deep(tmp_path / "deep", 1500)
    seen = list(tree.walk(tmp_path / "deep"))
    assert len(seen) == 1501 and all(files == ["f"] for _, _, files in seen[:-1])
    bottom_up = [path for path, _, _ in tree.walk(tmp_path / "deep", topdown=False)]
    assert bottom_up == [path for path, _, _ in seen][::-1]
    tree.remove(tmp_path / "deep")
