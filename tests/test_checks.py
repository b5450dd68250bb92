"""System checks refuse cluster settings that would break the engine's guarantees."""

from workflows.checks import check_cluster_settings


def test_default_cluster_settings_pass():
    assert check_cluster_settings(None) == []


def test_retry_not_above_timeout_rejected(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 300, "retry": 300}

    errors = check_cluster_settings(None)

    assert [error.id for error in errors] == ["mktauto.E001"]
    assert "retry (300) must be larger than timeout (300)" in errors[0].msg


def test_catch_up_rejected(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "catch_up": True}

    assert [error.id for error in check_cluster_settings(None)] == ["mktauto.E002"]
