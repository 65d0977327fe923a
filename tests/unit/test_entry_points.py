"""Entry points read without importlib.metadata (engine/entry_points.py): the same answer
on this environment, and the specification's rules on a made-up one."""

import importlib.metadata

import pytest

from engine import entry_points


@pytest.mark.parametrize("group", ["berth.plugins", "console_scripts", "pytest11"])
def test_the_same_entry_points_as_importlib_metadata(group):
    expected = sorted((e.name, e.value) for e in importlib.metadata.entry_points(group=group))
    assert expected, f"nothing installed in {group} to compare"
    assert sorted((e.name, e.value) for e in entry_points.find(group)) == expected


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_first_distribution_of_a_name_along_the_path_counts(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write(first / "my_plugin-1.0.dist-info" / "entry_points.txt",
          "# a comment\n[console_scripts]\ntool = my_plugin.cli:main\n\n[berth.plugins]\n"
          "  audit = my_plugin.audit:plugin [extra]\n; another comment\n")
    write(second / "My.Plugin-2.0.dist-info" / "entry_points.txt", "[berth.plugins]\nold = my_plugin.old\n")
    write(second / "other.egg-info" / "entry_points.txt", "[berth.plugins]\nlegacy=other_pkg\n")
    (second / "no_entries-1.0.dist-info").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    found = entry_points.find("berth.plugins", [str(first), str(tmp_path / "a-file"), str(second), "/nonexistent"])
    assert found == [("audit", "my_plugin.audit:plugin [extra]"), ("legacy", "other_pkg")]
    assert [e.module for e in found] == ["my_plugin.audit", "other_pkg"]
    assert entry_points.find("nothing.here", [str(first), str(second)]) == []
