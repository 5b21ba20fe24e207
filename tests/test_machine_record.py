"""runrecord/machine.py: the machine record of settings.json, its resume segments, and where the tables name it."""

import os

import runrecord
from runrecord import cost, machine
from reproduce import report
from tests.conftest import run_settings
from tests.tables_fixtures import collect, write_eval

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 23
model\t\t: 49
model name\t: AMD EPYC 7B12
stepping\t: 0
flags\t\t: fpu sse2 avx avx2 fma
cpu MHz\t\t: 2250.000

processor\t: 1
model name\t: not read: the first processor stands for all
"""


def record(tmp_path, libraries=None, from_step=0):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    return machine.machine_record(
        libraries or {"tensorflow": "2.21.0", "numpy": "2.1", "onednn": "on"},
        from_step,
        cpuinfo=str(path),
    )


def test_cpu_model_and_flags_from_cpuinfo(tmp_path):
    cpu = record(tmp_path)["cpu"]
    assert cpu["model"] == "AMD EPYC 7B12" and cpu["family"] == "23" and cpu["model_id"] == "49"
    assert (
        cpu["flags"].split() == ["fpu", "sse2", "avx", "avx2", "fma"]
        and cpu["logical_cpus"] == os.cpu_count()
    )
    assert machine.describe(record(tmp_path)).startswith(
        "AMD EPYC 7B12 (family 23 model 49, avx2), "
    )
    assert "TF 2.21.0, NumPy 2.1, oneDNN on" in machine.describe(record(tmp_path))


def test_bf16_and_the_clock_read_the_same_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert not machine.cpu_supports_bf16(str(path))
    assert cost._cpu_mhz(str(path)) == 2250.0
    path.write_text(CPUINFO.replace("avx2 fma", "avx2 avx512_bf16 fma"))
    assert machine.cpu_supports_bf16(str(path))
    assert machine.read_cpuinfo(str(tmp_path / "absent")) == [] and not machine.cpu_supports_bf16(
        str(tmp_path / "x")
    )


def test_a_resume_elsewhere_adds_a_segment_and_the_same_machine_none(tmp_path):
    here = record(tmp_path)
    assert machine.add_segment([], here) == [here]
    assert machine.add_segment([here], dict(here, from_step=40)) == [
        here
    ]  # same machine, later step
    other = record(tmp_path, {"tensorflow": "2.20.0", "numpy": "2.1", "onednn": "on"}, from_step=40)
    assert machine.add_segment([here], other) == [here, other]


def test_settings_keep_the_machine_and_never_compare_it(tmp_path):
    s = run_settings()
    s.machine = [record(tmp_path)]
    back = runrecord.RunSettings.from_json(s.to_json())
    assert back.machine == s.machine and back.differences(run_settings()) == []
    logdir = str(tmp_path / "run")
    os.makedirs(logdir)
    runrecord.write_json(os.path.join(logdir, runrecord.SETTINGS), s.to_json())
    runrecord.note_machine(logdir, dict(s.machine[0], from_step=12))  # resumed here: nothing to add
    assert runrecord.load_settings(logdir).machine == s.machine
    other = dict(s.machine[0], cpu=dict(s.machine[0]["cpu"], model="Intel Xeon"), from_step=12)
    runrecord.note_machine(logdir, other)
    assert runrecord.load_settings(logdir).machine == s.machine + [other]


def test_the_table_names_the_machines_its_cells_came_from(tmp_path):
    for name, model in (("r18-cam-b256", "AMD EPYC 7B12"), ("r18-gr-b256", "Intel Xeon")):
        s = run_settings()
        s.machine = [dict(record(tmp_path), cpu=dict(record(tmp_path)["cpu"], model=model))]
        write_eval(tmp_path / name, 50.0, 40.0, 60.0, settings=s)
    text = report.render(collect(tmp_path))
    assert (
        "trained on AMD EPYC 7B12 (family 23 model 49, avx2), " in text and ": r18-cam-b256" in text
    )
    assert "trained on Intel Xeon (family 23 model 49, avx2), " in text and ": r18-gr-b256" in text
