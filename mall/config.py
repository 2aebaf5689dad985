"""Settings of one mall instance, gathered in one place so tests and the CLI set them alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.clock import Clock

from .faults import FaultProfile


@dataclass
class MallConfig:
    # A SQLite file, or a postgresql:// URL (mall/storage/engines.py).
    db_path: Path | str = Path("xingcheng.db")
    clock: Clock = field(default_factory=Clock)
    # A simulated clock takes over the anchor stored with the database for the same start and
    # speed, so a restart resumes simulated time; False (an anchor given with --since) stores
    # this clock's anchor over it.
    resume_clock: bool = True
    # Simulated seconds an unpaid order holds its stock (WeChat's own default is 15-30 min).
    order_ttl_seconds: float = 15 * 60
    # Real seconds between sweeps for expired orders; lazy checks cover the gaps.
    expiry_sweep_interval: float = 1.0
    # Whether this process's sweeper also does the sweeps of the whole database (expiry,
    # reconciliation, group buys, missed points, the stock audit): with several workers on
    # one port only the first does, instead of each repeating them over the same rows.
    sweeps_database: bool = True
    # Real seconds a login token stays valid.
    token_ttl_seconds: int = 7 * 24 * 3600
    # Real seconds within which a payment notification's timestamp must fall.
    notification_window_seconds: int = 300
    # Largest request body accepted; larger gets 413.
    max_body_bytes: int = 64 * 1024
    # Read connections beside the single writer (WAL lets readers run during a write).
    read_connections: int = 2
    # PostgreSQL: connections in this process's pool (each worker process has its own), and
    # how long a request waits for one before it is answered 503 (a pool run dry by slow
    # queries must not hold clients for a driver's 30 s or more).
    pool_size: int = 10
    pool_timeout_seconds: float = 5.0
    # Wrong pickup codes an order tolerates before it locks further attempts.
    pickup_code_attempts: int = 5
    # The payer (WeChat Pay, or `xingcheng paysandbox`): its base URL and the keyring of this
    # merchant account.  Without a payer, paying answers 503.
    payer_url: str | None = None
    payer_keys: Path | None = None
    # Where the payer sends notifications; None = this mall's origin as the customer reached it.
    notify_url: str | None = None
    # Simulated seconds without a notification before the mall queries the payer (主动查单).
    payment_query_after_seconds: float = 60.0
    # Real seconds a process answers "sold out" for a flash sale from memory before it asks
    # the database again (a unit may come back from an order closed unpaid, in any process).
    flash_sale_recheck_seconds: float = 0.2
    access_log: bool = True
    # Load shedding (mall/shedding.py): requests are refused with 503 and Retry-After while
    # they have waited longer than the target for a whole interval (real seconds); a target
    # of None serves everything, however late.  Twice CoDel's network defaults (5 ms, 100 ms):
    # with those the standard late-night crest shed 95 requests on this project's machines.
    shed_target_seconds: float | None = 0.01
    shed_interval_seconds: float = 0.2
    # Risk-control rules (rate limits per account and address); None: the shipped ones.
    risk_rules: Path | None = None
    # Redis for risk-control windows every process shares (mall/shared_limits.py); None:
    # each process counts its own.  The prefix keeps one mall's keys from another's.
    redis_url: str | None = None
    redis_prefix: str = "xingcheng:risk"
    # Membership levels, points and their worth; None: the shipped mall/data/membership.toml.
    membership: Path | None = None
    # A/B experiments' definitions; None: the shipped ones (mall/data/experiments.toml).
    experiments: Path | None = None
    # A fault profile for rehearsals (`--faults FILE`); None in every real deployment.
    faults: FaultProfile | None = None
