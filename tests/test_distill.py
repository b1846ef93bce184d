"""Distillers: golden properties of each loss, shapes of the extra modules, and end-to-end training."""
import pytest
import torch

from baselines import create_model
from methods.fitnet import FitNetParams, hint_index, make_regressor
from methods.kd import kd_loss
from methods.rkd import rkd_angle_loss, rkd_distance_loss
from suite.data import DATASETS
from suite.distill import stage_shapes
from suite.spec import CellSpec

KD_PAIRS = [("resnet110", "resnet32"), ("vgg16", "vgg8"), ("resnet56", "resnet20"), ("resnet32x4", "resnet8x4"),
            ("vgg13", "vgg8")]


def test_kd_loss_is_zero_for_equal_logits_and_positive_otherwise():
    torch.manual_seed(0)
    z = torch.randn(16, 100)
    assert kd_loss(z, z.clone(), 4.0).abs().item() < 1e-6
    assert kd_loss(z, torch.randn(16, 100), 4.0).item() > 0


def test_rkd_losses_are_zero_for_identical_and_scale_invariant():
    torch.manual_seed(0)
    s, t = torch.randn(32, 64), torch.randn(32, 64)
    for loss in (rkd_distance_loss, rkd_angle_loss):
        assert loss(s, s.clone()).item() < 1e-7
        assert loss(s, t).item() > 0
        assert loss(3.7 * s, t).item() == pytest.approx(loss(s, t).item(), rel=1e-4)


@pytest.mark.parametrize("teacher,student", KD_PAIRS)
def test_fitnet_regressor_maps_student_stage_to_teacher_stage(teacher, student):
    info = DATASETS.get("cifar100")
    t_model, s_model = create_model(teacher, num_classes=100), create_model(student, num_classes=100)
    t_shapes, s_shapes = stage_shapes(t_model, info), stage_shapes(s_model, info)
    p = FitNetParams()
    s_shape, t_shape = s_shapes[hint_index(p, s_model)], t_shapes[hint_index(p, t_model)]
    out = make_regressor(s_shape, t_shape)(torch.randn(2, *s_shape))
    assert out.shape[1:] == t_shape




def student(method, **params):
    # BN ResNets, as in the table's pairs (FitNet's hint weight 100 overwhelms a BN-free LeNet at this lr)
    return CellSpec.make(method, "resnet8", "synthetic_cifar10", "smoke", params={"teacher": "resnet8", **params},
                         recipe_overrides={"epochs": 2, "train_subset": None})


def test_students_of_one_teacher_plan_it_once_and_first(make_runner):
    cells = make_runner().plan([student(m) for m in ("kd", "rkd", "fitnet", "ft")])
    teachers = [c for c in cells if c.spec.method == "baseline"]
    assert len(teachers) == 1 and cells[0] is teachers[0]  # one teacher, trained first
    assert all(c.deps == {"teacher": teachers[0]} for c in cells[1:])


def distillers() -> list[str]:
    from suite.plugins import family_members

    return family_members("distiller")


@pytest.fixture(scope="module")
def shared_teacher_store(tmp_path_factory):
    """One store whose teacher every test below distils from (trained once per test process)."""
    from suite.runner import Runner
    from suite.store import Store

    root = tmp_path_factory.mktemp("shared_teacher")

    def runner():
        return Runner(Store(root / "store.sqlite"), root / "artifacts", device="cpu", progress=False, log=lambda *_: None)

    teacher = [c for c in runner().plan([student("kd")]) if c.spec.method == "baseline"]
    assert runner().run(teacher).failed == {}
    return runner


@pytest.mark.parametrize("name", distillers())
def test_every_registered_distiller_trains_a_student_above_chance(shared_teacher_store, name):
    """Every distiller of the registry, each end to end on one shared teacher: extra modules, pre-training stages
    (AB, FSP, FT's paraphraser), warm-ups (DKD, ReviewKD), memory banks (CRD). One test each, so the test processes
    share them out; adding a distiller needs no edit here."""
    runner = shared_teacher_store()
    # 256 CRD negatives of the ~1800 other-class images: drawn without replacement, as at the kd table's sizes (its
    # 16384 would exceed them and switch to drawing with replacement)
    small = {"crd": {"negatives": 256}}
    cells = runner.plan([student(name, **small.get(name, {}))])
    teacher, cell = cells
    assert runner.store.get(teacher.key)["status"] == "done"  # the shared teacher, not trained again
    summary = runner.run(cells)
    assert summary.failed == {} and summary.done == [cell.key]
    metrics = runner.store.get(cell.key)["metrics"]
    assert metrics["top1"] > 30, (name, metrics["top1"])  # chance is 10 %
    assert metrics["deps"] == {"teacher": teacher.key}
    stages = [s["stage"] for s in metrics["stages"]]
    assert stages == {"ab": ["ab_init", "main"], "fsp": ["fsp_init", "main"],
                      "ft": ["paraphraser", "main"]}.get(name, stages)
    if name == "ft":
        assert metrics["paraphraser_mse_after"] < metrics["paraphraser_mse_before"]  # pre-training taught it to reconstruct


def test_teacher_checkpoint_by_path_replaces_the_teacher_cell(tmp_path, make_runner):
    path = tmp_path / "teacher.pt"
    torch.save(create_model("resnet8", 10, 3).state_dict(), path)
    runner = make_runner()
    cells = runner.plan([student("kd", teacher_checkpoint=str(path))])
    assert [c.spec.method for c in cells] == ["kd"]
    assert runner.run(cells).failed == {}
    bad = tmp_path / "bad.pt"
    torch.save({"nope": torch.zeros(1)}, bad)
    failed = make_runner().run(make_runner().plan([student("kd", teacher_checkpoint=str(bad))])).failed
    assert list(failed.values())[0].startswith("ValueError: teacher checkpoint") 


def test_a_teacher_shared_by_two_students_and_two_seeds_is_trained_once(make_runner):
    runner = make_runner()
    specs = [CellSpec.make(m, "resnet8", "synthetic_cifar10", "smoke", seed=s, params={"teacher": "resnet8"},
                           protocol="mdistiller") for m in ("kd", "rkd") for s in (0, 1)]
    cells = runner.plan(specs)
    teachers = {c.deps["teacher"].key for c in cells if c.spec.method != "baseline"}
    assert len(teachers) == 1 and [c.spec.method for c in cells].count("baseline") == 1
    teacher = next(c for c in cells if c.spec.method == "baseline")
    assert teacher.spec.seed == 0 and teacher.spec.protocol == "mdistiller_teacher"
    summary = runner.run(cells)
    assert summary.failed == {} and len(summary.done) == 5  # one teacher, four students


def test_kd_table_warns_when_a_teacher_is_not_better_than_its_student():
    from suite.tables import TableOptions, get_table

    table = get_table("kd")
    rows = table.rows(TableOptions(profile="smoke", dataset="synthetic_cifar100"))[:2]  # teacher, student
    lines = [{"Top-1 % (ours)": "59.32", "n": "1", "_top1_mean": 59.32},
             {"Top-1 % (ours)": "62.34", "n": "3", "_top1_mean": 62.34}]
    summary = table.summary_lines(rows, lines)
    assert any(line.startswith("WARNING: the teacher of ResNet56 → ResNet20 (59.32 %) is not better") for line in summary)
    lines[0]["_top1_mean"] = 70.0
    assert not any("WARNING" in line for line in table.summary_lines(rows, lines))


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_kd_teachers_train_on_their_students_images_and_the_table_says_so(profile):
    """A teacher that saw more images than its students makes a distiller's gain partly those images (issue 25)."""
    from suite.profiles import PROFILES, teacher_protocol
    from suite.tables.kd import training_images_note

    teacher = PROFILES.get(profile).recipe("cifar", teacher_protocol("mdistiller"))
    student = PROFILES.get(profile).recipe("cifar", "mdistiller")
    assert teacher.train_subset == student.train_subset
    assert training_images_note(teacher, student).startswith("Training images: the teacher and every student")


def test_kd_table_warns_when_teacher_and_students_train_on_different_images():
    from suite.profiles import Recipe
    from suite.tables.kd import training_images_note

    note = training_images_note(Recipe(epochs=15, batch_size=128, lr=0.1),
                                Recipe(epochs=10, batch_size=64, lr=0.05, train_subset=10000))
    assert note.startswith("WARNING: the teacher trains on the whole training split and the students on the same "
                           "stratified 10,000-image subset")


def test_kd_training_images_note_reads_the_planned_recipes_so_a_budget_shows_its_epochs():
    """The note comes from the resolved cells (plan once): at a budget of 30 epochs the students' 30 are stated."""
    from suite.plan import PlanOptions, Planner
    from suite.spec import CellSpec
    from suite.tables import TableOptions, get_table

    table, opts = get_table("kd"), TableOptions(profile="cpu", dataset="synthetic_cifar10", methods=("kd",))
    rows = [r for r in table.rows(opts) if r.spec is not None]
    planner = Planner(options=PlanOptions(precision="fp32", budget="30"))
    cells = [[planner.resolve(r.spec)] for r in rows]
    (note,) = table.cell_notes(rows, cells)
    assert "the students 30" in note and f"teacher trains {cells[0][0].recipe.epochs} epochs" in note


def test_kd_table_gives_kendalls_tau_with_the_reported_ordering():
    """Constructed accuracies in RepDistiller's own order give tau = +1, in the reverse order -1 (issue 25/26)."""
    from suite.reference import reported
    from suite.tables import TableOptions, get_table
    from suite.tables.kd import rank_agreement_lines

    rows = get_table("kd").rows(TableOptions(profile="cpu", dataset="cifar10"))
    figures = {r.spec.method: f.value for r in rows if r.role == ""
               and (f := reported("repdistiller", "README", r.spec.method, "resnet56_resnet20", optional=True))}
    assert len(figures) >= 10  # RepDistiller's README ranks most of the registered distillers for this pair

    def lines(sign: float) -> list[dict]:
        return [{"_top1_values": [sign * figures[r.spec.method] + d for d in (-0.001, 0.0, 0.001)]}
                if r.spec.method in figures and r.role == "" else {} for r in rows]

    same, = rank_agreement_lines(rows, lines(+1))
    assert same.startswith(f"Rank agreement (ResNet56 → ResNet20): Kendall's τ = +1.00 [95 % bootstrap over seeds "
                           f"+1.00, +1.00] between this table's ordering of the {len(figures)} distillers")
    reverse, = rank_agreement_lines(rows, lines(-1))
    assert "Kendall's τ = -1.00" in reverse and "(seeds per row: 3)" in reverse
