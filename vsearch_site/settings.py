"""The one settings module. Every knob is an environment variable; defaults run on a laptop
(SQLite and media under ./var, no broker: background work runs in a thread of the web process)."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from vsearch_site.env import (
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    redis_url_checked,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("VSEARCH_DATA_DIR") or BASE_DIR / "var").resolve()

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    # Laptop default: a random key kept under DATA_DIR, so signed voter cookies survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_prometheus",
    "matching",
    "voting",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "vsearch_site.middleware.ContentSecurityPolicyMiddleware",
    # Inside the two above, so a rewritten error still gets their headers; outside the rest, so it sees their errors.
    "vsearch_site.middleware.ApiJsonErrorsMiddleware",
    "vsearch_site.middleware.DatabaseUnavailableMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Request counts and latencies by view for Prometheus (django-prometheus), first and last so they time everything in
# between. They cost about 60 µs of CPU per request (a trivial view: 130 -> 195 µs; docs/BENCHMARKS.md, vote path),
# some 3% of a vote; VSEARCH_METRICS_REQUESTS=off drops them (the application's own counters stay).
if env_bool("VSEARCH_METRICS_REQUESTS", True):
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]

ROOT_URLCONF = "vsearch_site.urls"
WSGI_APPLICATION = "vsearch_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(env_str("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    redis_url_checked(REDIS_URL)
    CACHES = {
        "default": {
            "BACKEND": "vsearch_site.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "vsearch"}}

# Background work. "celery": a worker on REDIS_URL does it; "thread": a thread inside this
# process (the laptop default, no broker); "eager": inline, for tests and management commands.
VSEARCH_TASKS = env_str("VSEARCH_TASKS") or ("celery" if REDIS_URL else "thread")
if VSEARCH_TASKS not in {"celery", "thread", "eager"}:
    raise ImproperlyConfigured(f"VSEARCH_TASKS={VSEARCH_TASKS!r} must be celery, thread or eager.")
if VSEARCH_TASKS == "celery" and not REDIS_URL:
    raise ImproperlyConfigured("VSEARCH_TASKS=celery needs REDIS_URL (redis://127.0.0.1:6379/0).")

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longest build seen on the demo catalog is about two minutes; a redelivery must not race it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("VSEARCH_VISIBILITY_TIMEOUT", 3 * 3600, minimum=5)}
CELERY_TASK_ALWAYS_EAGER = VSEARCH_TASKS == "eager"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery beat (`make serve` runs it inside the worker: `celery worker --beat`; with several workers run one
# `celery beat` instead). Builds that found the broker down are sent again every minute.
CELERY_BEAT_SCHEDULE = {
    "resend-pending-builds": {"task": "matching.resend_pending", "schedule": 60.0},
    "review-voters": {"task": "voting.review_voters", "schedule": 60.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# A build step's owner that has shown no sign of life (progress) for this long is presumed dead on another
# host, and a redelivered step may take over; on its own host a dead pid is noticed at once.
VSEARCH_BUILD_LEASE_SECONDS = env_int("VSEARCH_BUILD_LEASE_SECONDS", 600, minimum=1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("VSEARCH_MEDIA_ROOT") or DATA_DIR / "media").resolve()
# Public media holds only catalog images (served to anyone under MEDIA_URL). Everything that would name a model
# if it were public (features, indexes, weights, uploads) lives here, outside it, and is never served.
VSEARCH_PRIVATE_ROOT = Path(env_str("VSEARCH_PRIVATE_ROOT") or DATA_DIR / "private").resolve()
VSEARCH_PUBLIC_MEDIA_FOLDERS = ("items",)  # the only folders of MEDIA_ROOT that /media/ serves
if VSEARCH_PRIVATE_ROOT == MEDIA_ROOT or MEDIA_ROOT in VSEARCH_PRIVATE_ROOT.parents:
    raise ImproperlyConfigured(
        f"VSEARCH_PRIVATE_ROOT={VSEARCH_PRIVATE_ROOT} is inside the public media root {MEDIA_ROOT}: build files "
        "there would be served to anyone. Put it elsewhere."
    )
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "vsearch_site.staticfiles.StaticStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without collectstatic's output (`manage.py runserver` without DJANGO_DEBUG=1, a first start) pages link the
# apps' files by their plain names, and whitenoise serves those from the apps.
WHITENOISE_USE_FINDERS = DEBUG or not (STATIC_ROOT / "staticfiles.json").exists()

LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "vsearch_site.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "votes": env_str("VSEARCH_VOTE_RATE") or "120/min",
        "votes_ip": env_str("VSEARCH_VOTE_IP_RATE") or "6000/min",
        "pairs": env_str("VSEARCH_PAIR_RATE") or "240/min",
        "leaderboard": env_str("VSEARCH_LEADERBOARD_RATE") or "120/min",
        # Search by photo runs a network per request (40-80 ms of CPU): a person searches a few times a minute.
        "search": env_str("VSEARCH_SEARCH_RATE") or "30/min",
        "search_ip": env_str("VSEARCH_SEARCH_IP_RATE") or "300/min",
    },
    "NUM_PROXIES": env_int("VSEARCH_NUM_PROXIES", 0, minimum=0),
    "EXCEPTION_HANDLER": "vsearch_site.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "vsearch API",
    "DESCRIPTION": "Blind voting on visual-search match pairs, the leaderboard, and staff model uploads.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# Catalog import limits.
VSEARCH_MAX_IMAGE_PIXELS = env_int("VSEARCH_MAX_IMAGE_PIXELS", 40_000_000, minimum=1)
VSEARCH_MAX_IMAGE_BYTES = env_int("VSEARCH_MAX_IMAGE_BYTES", 20 * 1024 * 1024, minimum=1)
# Search by photo: the largest photo accepted (pixels: VSEARCH_MAX_IMAGE_PIXELS). A 48 Mpx phone JPEG is 10-20 MB.
VSEARCH_SEARCH_MAX_BYTES = env_int("VSEARCH_SEARCH_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
# Model uploads.
VSEARCH_MAX_UPLOAD_BYTES = env_int("VSEARCH_MAX_UPLOAD_BYTES", 600 * 1024 * 1024, minimum=1)
# Featurization: images per batch, DataLoader workers, and where torchvision keeps weights. Batches of 8 ran
# fastest on a 2-core CPU (ResNet-50 16.2 img/s vs 11.5 at 32: docs/BENCHMARKS.md); a worker process for
# decoding only competed with torch for the cores.
VSEARCH_BATCH_SIZE = env_int("VSEARCH_BATCH_SIZE", 8, minimum=1)
# Threads of the map's t-SNE. On the shared 2-core machine 2 threads took 198 s for 10k items where 1 took 80 s, and
# 17 s for 1k where 1 took 5.6 (docs/BENCHMARKS.md, layout): its threads wait on each other when the cores are
# busy. Raise it on a worker with cores of its own.
VSEARCH_LAYOUT_THREADS = env_int("VSEARCH_LAYOUT_THREADS", 1, minimum=1)
VSEARCH_LOADER_WORKERS = env_int("VSEARCH_LOADER_WORKERS", 0, minimum=0)
# Items per featurizing chunk (a task, a claim and a file each; workers share a run's chunks). Each chunk cost
# 18 ms beyond its images (78 ms with the machine loaded: docs/BENCHMARKS.md, chunks); 512 images are 97 s of
# VGG16 at 5.3 img/s and 11 s of ResNet-18 at 47 img/s (featurize): under 1% overhead, and a killed worker or the
# last chunk of a run costs at most that long. 1M images make 1,954 chunks: rows, messages and files a database
# and Redis take in their stride.
VSEARCH_FEATURIZE_CHUNK = env_int("VSEARCH_FEATURIZE_CHUNK", 512, minimum=1)
# Up to this many items, pairs come from exact brute-force search (perfect recall). For l2, cosine and
# hamming (a matrix multiply) exact beat Annoy at recall@10 >= 0.95 by 1.4-10x at 1k-10k items; at 100k
# (512-d) Annoy won for l2 (2.5x) and lost for cosine and hamming (1.2-1.5x), so the switch is at 50k.
# L1 has no such form: Annoy was 9x faster at 10k. The Annoy index is built and evaluated either way
# (docs/BENCHMARKS.md, index).
VSEARCH_EXACT_MAX_ITEMS = env_int("VSEARCH_EXACT_MAX_ITEMS", 50_000, minimum=0)
VSEARCH_EXACT_MAX_ITEMS_L1 = env_int("VSEARCH_EXACT_MAX_ITEMS_L1", 5000, minimum=0)
# Off: a missing pretrained file is a clear error at once instead of a download attempt (tests, air-gapped hosts).
VSEARCH_ALLOW_DOWNLOADS = env_bool("VSEARCH_ALLOW_DOWNLOADS", True)
# Voting.
VSEARCH_TOKEN_MAX_AGE = env_int("VSEARCH_TOKEN_MAX_AGE", 3600, minimum=1)
VSEARCH_UNDO_SECONDS = env_int("VSEARCH_UNDO_SECONDS", 30, minimum=0)
# A nope's reason (one optional tap after the vote) is taken this long after the vote: the page offers the chips for
# a few seconds, and a reason queued offline still lands when the connection returns.
VSEARCH_NOPE_REASON_SECONDS = env_int("VSEARCH_NOPE_REASON_SECONDS", 120, minimum=1)
VSEARCH_MIN_VOTES = env_int("VSEARCH_MIN_VOTES", 30, minimum=1)  # fewer: "provisional", not ranked
VSEARCH_NEW_DAYS = env_int("VSEARCH_NEW_DAYS", 7, minimum=0)  # a variant ready this recently is marked new
VSEARCH_CONFIDENCE = env_float("VSEARCH_CONFIDENCE", 0.95, minimum=0.5)
# A model's examples (its most approved and most rejected cards): cards with at least this many counted votes, this
# many of each kind. Staff see every model's; the public only those of models out of the rotation.
VSEARCH_EXAMPLES_MIN_VOTES = env_int("VSEARCH_EXAMPLES_MIN_VOTES", 3, minimum=1)
VSEARCH_EXAMPLES = env_int("VSEARCH_EXAMPLES", 8, minimum=1)
# Vote tallies per variant (card balancing and the leaderboard) are recomputed at most this often, by one process
# while the others serve the last ones: the aggregate over every vote took 1.1 s at 1M votes and 4.9 s at 10M on
# PostgreSQL (docs/BENCHMARKS.md, leaderboard).
VSEARCH_TALLY_SECONDS = env_float("VSEARCH_TALLY_SECONDS", 5.0, minimum=0.0)
# Blindness. The public leaderboard and its per-category rows come from a snapshot taken once per window of this
# many seconds, of the votes cast before the previous window began: no public number moves with a vote, and a vote
# shows up 1-2 windows later, long after its undo window. Staff see live numbers.
VSEARCH_PUBLIC_SNAPSHOT_SECONDS = env_int("VSEARCH_PUBLIC_SNAPSHOT_SECONDS", 600, minimum=1)
# How draws are shared among the models in the rotation (voting/design.py): "active" (top-two Thompson sampling
# on the models' posteriors: votes go where they separate the leader from its rival) or "balanced" (gentle
# balancing of vote counts). Active keeps ACTIVE_FLOOR of the draws spread evenly, so every model stays measured.
VSEARCH_DESIGN = env_str("VSEARCH_DESIGN") or "active"
if VSEARCH_DESIGN not in {"active", "balanced"}:
    raise ImproperlyConfigured(f"VSEARCH_DESIGN={VSEARCH_DESIGN!r} must be active or balanced.")
VSEARCH_ACTIVE_FLOOR = env_float("VSEARCH_ACTIVE_FLOOR", 0.3, minimum=0.01)
VSEARCH_TOP_TWO_BETA = env_float("VSEARCH_TOP_TWO_BETA", 0.5, minimum=0.0)
# The leaderboard's decision: a model with P(best) at least DECIDED is marked decided; two models whose
# difference is credibly (with DECIDED probability) smaller than EQUIVALENCE_MARGIN are practically equivalent.
VSEARCH_DECIDED = env_float("VSEARCH_DECIDED", 0.95, minimum=0.5)
VSEARCH_EQUIVALENCE_MARGIN = env_float("VSEARCH_EQUIVALENCE_MARGIN", 0.02, minimum=0.0)
# Balancing is gentle: a model's share of the draws stays within these multiples of the uniform share.
VSEARCH_BALANCE_MIN_SHARE = env_float("VSEARCH_BALANCE_MIN_SHARE", 0.5, minimum=0.0)
VSEARCH_BALANCE_MAX_SHARE = env_float("VSEARCH_BALANCE_MAX_SHARE", 2.0, minimum=1.0)
if VSEARCH_BALANCE_MIN_SHARE > 1.0:
    raise ImproperlyConfigured(f"VSEARCH_BALANCE_MIN_SHARE={VSEARCH_BALANCE_MIN_SHARE} must be at most 1.")
# Gold cards (known answers) measure each voter: GOLD_IN_FIRST of the first GOLD_FIRST_CARDS cards, then about
# 1 in GOLD_EVERY (0: none after the first cards). GOLD_CARDS: how many build_variants prepares, half of each kind.
VSEARCH_GOLD_FIRST_CARDS = env_int("VSEARCH_GOLD_FIRST_CARDS", 10, minimum=1)
VSEARCH_GOLD_IN_FIRST = env_int("VSEARCH_GOLD_IN_FIRST", 3, minimum=0)
VSEARCH_GOLD_EVERY = env_int("VSEARCH_GOLD_EVERY", 15, minimum=0)
VSEARCH_GOLD_CARDS = env_int("VSEARCH_GOLD_CARDS", 200, minimum=0)
# A voter's votes count for models once they have answered this many gold cards (their qualification): a script
# that clears its cookie before every vote never qualifies. 0: every vote counts from the first.
VSEARCH_QUALIFY_GOLD = env_int("VSEARCH_QUALIFY_GOLD", 2, minimum=0)
if VSEARCH_GOLD_IN_FIRST > VSEARCH_GOLD_FIRST_CARDS:
    raise ImproperlyConfigured("VSEARCH_GOLD_IN_FIRST cannot exceed VSEARCH_GOLD_FIRST_CARDS.")
# Voter quality (voting/quality.py): a voter credibly below GOLD_MIN_ACCURACY on gold cards (posterior probability
# above GOLD_CREDIBILITY) is excluded; so is one whose votes are credibly unlike everyone else's (Fisher-combined
# p below ANOMALY_ALPHA) unless their gold answers vouch for them (P(accuracy > GOLD_MIN_ACCURACY) >= GOLD_VOUCHES).
VSEARCH_GOLD_MIN_ACCURACY = env_float("VSEARCH_GOLD_MIN_ACCURACY", 0.7, minimum=0.0)
VSEARCH_GOLD_CREDIBILITY = env_float("VSEARCH_GOLD_CREDIBILITY", 0.95, minimum=0.5)
VSEARCH_GOLD_VOUCHES = env_float("VSEARCH_GOLD_VOUCHES", 0.9, minimum=0.0)
VSEARCH_ANOMALY_ALPHA = env_float("VSEARCH_ANOMALY_ALPHA", 1e-4, minimum=0.0)
VSEARCH_ANOMALY_FLAG_ALPHA = env_float("VSEARCH_ANOMALY_FLAG_ALPHA", 1e-2, minimum=0.0)
# ...and so is one whose votes are this many times likelier if they ignore the card than if they judge it as the
# crowd does (a sequential likelihood ratio: an honest voter reaches it with probability about 1/CARD_BLIND_ODDS).
VSEARCH_CARD_BLIND_ODDS = env_float("VSEARCH_CARD_BLIND_ODDS", 100.0, minimum=1.0)
VSEARCH_FAST_MS = env_int("VSEARCH_FAST_MS", 400, minimum=0)  # median time on screen below this: flagged "fast"
VSEARCH_STREAK = env_int("VSEARCH_STREAK", 25, minimum=2)  # this many identical verdicts in a row: flagged

# Operations. /metrics (Prometheus) answers staff and these client addresses or networks (resolved as the throttles
# resolve them: behind a proxy, set VSEARCH_NUM_PROXIES or every request looks like the proxy's); anyone else a 404.
VSEARCH_METRICS_ALLOW = env_networks("VSEARCH_METRICS_ALLOW", ["127.0.0.1", "::1"])

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the swipe page reads it to send X-CSRFToken
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Our pages and the admin need no inline script or style (an e2e test loads them under this policy and finds no
# violation). Off in DEBUG, whose error pages are inline; VSEARCH_CSP=off sends none, any other value replaces it.
DEFAULT_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
_csp = env_str("VSEARCH_CSP")
VSEARCH_CSP = "" if _csp.lower() == "off" else _csp or ("" if DEBUG else DEFAULT_CSP)

HSTS_PRELOAD_MIN_SECONDS = 31536000  # the preload list takes a site only with max-age of a year or more
VSEARCH_HTTPS = env_bool("VSEARCH_HTTPS", False)
_hsts_preload = env_bool("VSEARCH_HSTS_PRELOAD", False)
if _hsts_preload and not VSEARCH_HTTPS:
    raise ImproperlyConfigured("VSEARCH_HSTS_PRELOAD=1 needs VSEARCH_HTTPS=1: HSTS is sent only over HTTPS.")
if VSEARCH_HTTPS:
    SECURE_SSL_REDIRECT = env_bool("VSEARCH_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int(
        "VSEARCH_HSTS_SECONDS", HSTS_PRELOAD_MIN_SECONDS if _hsts_preload else 3600, minimum=0
    )
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preloading is a promise browsers ship (this domain and every subdomain on HTTPS, for months after it is
    # withdrawn), so it is asked for, never the default.
    SECURE_HSTS_PRELOAD = _hsts_preload
    if _hsts_preload and SECURE_HSTS_SECONDS < HSTS_PRELOAD_MIN_SECONDS:
        raise ImproperlyConfigured(
            f"VSEARCH_HSTS_PRELOAD=1 needs VSEARCH_HSTS_SECONDS of at least {HSTS_PRELOAD_MIN_SECONDS} (a year), "
            f"not {SECURE_HSTS_SECONDS}: the preload list refuses shorter ones."
        )
    if not _hsts_preload:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]  # "SECURE_HSTS_PRELOAD is not True": opt-in, as above
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("VSEARCH_LOG_LEVEL") or "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Eager task runs would log a line per step; a worker's own log level still applies.
        "celery.app.trace": {"level": "WARNING"},
        "openTSNE": {"level": "WARNING"},  # a line per optimisation phase of every map
    },
}
