import pytest

from crackops.config import (Resources, TrainConfig, list_profiles, load_profile,
                             parse_mem_mb, parse_time_min)
from crackops.errors import NotFoundError, UsageError


@pytest.mark.parametrize("text,mb", [("16G", 16384), ("16g", 16384), ("512M", 512), ("512", 512),
                                     ("1T", 1048576), ("2048K", 2), ("1.5G", 1536), ("16GB", 16384), (2048, 2048)])
def test_parse_mem(text, mb):
    assert parse_mem_mb(text) == mb


@pytest.mark.parametrize("text", ["", "abc", "-1G", "16X", "0", "G16", 0, -5])
def test_parse_mem_refuses(text):
    with pytest.raises(UsageError):
        parse_mem_mb(text)


@pytest.mark.parametrize("text,minutes", [("4:00:00", 240), ("30", 30), ("30:00", 30), ("30:01", 31),
                                          ("1-00:00:00", 1440), ("1-2", 1560), ("1-02:30", 1590),
                                          ("0:20:00", 20), (15, 15)])
def test_parse_time(text, minutes):
    assert parse_time_min(text) == minutes


@pytest.mark.parametrize("text", ["", "4h", "1:2:3:4", "-5", "0", "0:00:00", "abc"])
def test_parse_time_refuses(text):
    with pytest.raises(UsageError):
        parse_time_min(text)


def test_default_profile_is_the_seed_request():
    res, train = load_profile("default")
    assert (res.cpus, res.mem_mb, res.time_min, res.job_name) == (4, 16384, 240, "cnn_crack")
    assert train == {}
    assert {"default", "debug"} <= set(list_profiles())


def test_user_profile_overrides_and_bad_profiles(crackops_dirs):
    d = crackops_dirs["home"] / "profiles"
    d.mkdir(parents=True)
    (d / "default.toml").write_text('[resources]\ncpus = 8\nmem = "32G"\ntime = "8:00:00"\n')
    (d / "broken.toml").write_text("[resources\ncpus = ")
    (d / "typo.toml").write_text("[resources]\ncpu = 4\n")
    res, _ = load_profile("default")
    assert res.cpus == 8 and res.mem_mb == 32768
    with pytest.raises(UsageError, match="cannot read profile"):
        load_profile("broken")
    with pytest.raises(UsageError, match="unknown keys"):
        load_profile("typo")
    with pytest.raises(NotFoundError, match="unknown profile"):
        load_profile("nope")


@pytest.mark.parametrize("kw", [dict(cpus=0), dict(cpus=-2), dict(mem="lots"), dict(time="forever"),
                                dict(job_name="bad name")])
def test_resources_validate(kw):
    with pytest.raises(UsageError):
        Resources(**kw).validate()


@pytest.mark.parametrize("kw", [dict(image_size=8), dict(batch_size=0), dict(epochs=0), dict(learning_rate=0),
                                dict(learning_rate=2.0), dict(bn_momentum=1.0), dict(dropout=1.0),
                                dict(test_fraction=0.0), dict(val_fraction=1.0), dict(mixed_precision="fp8"),
                                dict(max_images=1), dict(es_patience=-1)])
def test_train_config_validate(kw):
    with pytest.raises(UsageError):
        TrainConfig(data_dir="x", **kw).validate()


def test_train_config_roundtrip_and_defaults():
    c = TrainConfig(data_dir="d", epochs=3)
    assert TrainConfig.from_dict({**c.to_dict(), "unknown": 1}) == c
    # the measured full-scale recipe (benchmarks/time_to_accuracy.py), and the BatchNorm momentum
    # that learns on small data
    assert (c.image_size, c.batch_size, c.lr_schedule, c.warmup_epochs) == (64, 64, "cosine", 0.3)
    assert (c.dropout, c.test_fraction, c.bn_momentum, c.augment) == (0.3, 0.2, None, "off")
    assert TrainConfig().epochs == 5
    assert c.with_overrides(epochs=None, seed=7).seed == 7


def test_auto_bn_momentum_follows_steps_per_epoch():
    from crackops.config import auto_bn_momentum

    assert auto_bn_momentum(7) == 0.5179         # a few hundred images: fast-moving statistics
    assert auto_bn_momentum(2) == 0.5            # clamped
    assert 0.7 < auto_bn_momentum(15) < 0.75
    assert auto_bn_momentum(900) == 0.99          # the full dataset: Keras' default
    for steps in (7, 15, 60, 200):
        assert auto_bn_momentum(steps) ** steps <= 0.0101 or auto_bn_momentum(steps) == 0.5
    assert TrainConfig(bn_momentum=0.9).resolved_bn_momentum(7) == 0.9


def test_seed_profile_is_the_seed_reports_recipe():
    from crackops.config import load_profile

    res, train = load_profile("seed")
    c = TrainConfig(data_dir="d").with_overrides(**train)
    assert (res.cpus, res.mem, res.time) == (4, "16G", "4:00:00")
    assert (c.image_size, c.batch_size, c.epochs, c.learning_rate) == (150, 32, 20, 1e-3)
    assert (c.lr_schedule, c.es_patience, c.lr_patience, c.lr_factor) == ("plateau", 3, 2, 0.5)
    assert (c.bn_momentum, c.augment, c.mixed_precision, c.fused_batchnorm) == (0.99, "off", "off", False)


def test_schedule_and_augment_values_are_checked():
    import pytest

    from crackops.errors import UsageError

    for bad in (dict(lr_schedule="linear"), dict(augment="rotate"), dict(warmup_epochs=5.0, epochs=5),
                dict(warmup_epochs=-1.0)):
        with pytest.raises(UsageError):
            TrainConfig(data_dir="d", **bad).validate()
