from hb.cli import main


def test_hb_flusher_refuses_a_bad_setting_by_name(monkeypatch, capsys):
    monkeypatch.setenv("HB_FLUSH_INTERVAL", "soon")
    assert main(["flusher"]) == 2
    err = capsys.readouterr().err
    assert "HB_FLUSH_INTERVAL" in err and "soon" in err


def test_flusher_needs_no_token_keys(monkeypatch):
    from flusher import worker

    monkeypatch.delenv("HB_TOKEN_KEYS", raising=False)
    monkeypatch.setenv("HB_REDIS_URL", "redis://127.0.0.1:6399/3")
    monkeypatch.setenv("HB_FLUSH_INTERVAL", "10")
    settings_cls = worker.WorkerSettings
    assert settings_cls.redis_settings.port == 6399
    assert settings_cls.redis_settings.database == 3
    assert {job.name for job in settings_cls.cron_jobs} == {
        "cron:flush_dirty", "cron:reconcile", "cron:sweep_events", "cron:deliver_webhooks",
    }  # fmt: skip
