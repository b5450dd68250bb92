"""Settings for mktauto.

Every value that differs between installations comes from an environment variable, so a
scale-out set-up (PostgreSQL, Redis, several clusters) never needs a code edit. README.md
lists the variables.
"""

import os
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MKTAUTO_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# The default key is for the embedded demo only; production sets MKTAUTO_SECRET_KEY.
SECRET_KEY = os.environ.get("MKTAUTO_SECRET_KEY", "insecure-mktauto-development-key-change-me")
DEBUG = env_bool("MKTAUTO_DEBUG", True)
ALLOWED_HOSTS = [h for h in os.environ.get("MKTAUTO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("MKTAUTO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "import_export",
    "django_filters",
    "rest_framework",
    "corsheaders",
    "django_jsonform",
    "adminsortable2",
    "simple_history",
    "anymail",
    "contacts",
    "campaigns",
    "workflows",
]

MIDDLEWARE = [
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "mktauto.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "mktauto.wsgi.application"


# Database: SQLite in var/ by default, anything dj-database-url reads when DATABASE_URL is set.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'mktauto.sqlite3'}",
        conn_max_age=int(os.environ.get("MKTAUTO_DB_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of failing with
    # "database is locked" half-way through a transaction. WAL lets the admin read while the
    # cluster writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]


# Language: Dutch first. LocaleMiddleware serves English to a browser whose Accept-Language requests it.
LANGUAGE_CODE = os.environ.get("MKTAUTO_LANGUAGE_CODE", "nl")
LANGUAGES = [("nl", _("Dutch")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True

# Time zone for contacts who have none of their own, and the one the admin shows times in.
# The database stores UTC either way.
MKTAUTO_TIME_ZONE = os.environ.get("MKTAUTO_TIME_ZONE", "Europe/Amsterdam")
TIME_ZONE = MKTAUTO_TIME_ZONE
# Public address of this installation, used in unsubscribe, tracking and preference links.
MKTAUTO_BASE_URL = os.environ.get("MKTAUTO_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# A mailbox that takes "unsubscribe" mails; when set, List-Unsubscribe also offers a mailto: form.
MKTAUTO_UNSUBSCRIBE_MAILTO = os.environ.get("MKTAUTO_UNSUBSCRIBE_MAILTO", "")
# The Shopify app's client secret; verifies webhooks from shops that have no Shop row.
MKTAUTO_SHOPIFY_WEBHOOK_SECRET = os.environ.get("MKTAUTO_SHOPIFY_WEBHOOK_SECRET", "")
# Lead score decay: points taken off once a day from contacts with no event in the idle window; 0 is off.
MKTAUTO_SCORE_DECAY_POINTS = int(os.environ.get("MKTAUTO_SCORE_DECAY_POINTS", "0"))
MKTAUTO_SCORE_DECAY_IDLE_DAYS = int(os.environ.get("MKTAUTO_SCORE_DECAY_IDLE_DAYS", "30"))
MKTAUTO_DEFAULT_CURRENCY = os.environ.get("MKTAUTO_DEFAULT_CURRENCY", "EUR")
MKTAUTO_DEFAULT_PHONE_REGION = os.environ.get("MKTAUTO_DEFAULT_PHONE_REGION", "NL")
MKTAUTO_BRAND_NAME = os.environ.get("MKTAUTO_BRAND_NAME", "Demo Shop")
MKTAUTO_SHOP_URL = os.environ.get("MKTAUTO_SHOP_URL", "https://shop.example.com")
# Enrollments advanced per locked batch and batches per tick; the tick returns after
# MKTAUTO_TICK_MAX_BATCHES so a scheduled run always ends.
MKTAUTO_TICK_BATCH_SIZE = int(os.environ.get("MKTAUTO_TICK_BATCH_SIZE", "2000"))
MKTAUTO_TICK_MAX_BATCHES = int(os.environ.get("MKTAUTO_TICK_MAX_BATCHES", "50"))
MKTAUTO_DISPATCH_BATCH_SIZE = int(os.environ.get("MKTAUTO_DISPATCH_BATCH_SIZE", "500"))
MKTAUTO_SEND_MAX_ATTEMPTS = int(os.environ.get("MKTAUTO_SEND_MAX_ATTEMPTS", "5"))

# SMS and WhatsApp: file backends under var/ by default; campaigns.channels.brevo.* sends through Brevo.
MKTAUTO_SMS_BACKEND = os.environ.get("MKTAUTO_SMS_BACKEND", "campaigns.channels.file.FileBackend")
MKTAUTO_WHATSAPP_BACKEND = os.environ.get("MKTAUTO_WHATSAPP_BACKEND", "campaigns.channels.file.FileBackend")
MKTAUTO_CHANNEL_FILE_PATH = os.environ.get("MKTAUTO_CHANNEL_FILE_PATH", str(VAR_DIR))
MKTAUTO_BREVO_API_URL = os.environ.get("MKTAUTO_BREVO_API_URL", "https://api.brevo.com/v3/")
MKTAUTO_SMS_SENDER = os.environ.get("MKTAUTO_SMS_SENDER", MKTAUTO_BRAND_NAME[:11])
MKTAUTO_WHATSAPP_SENDER_NUMBER = os.environ.get("MKTAUTO_WHATSAPP_SENDER_NUMBER", "")
MKTAUTO_CHANNEL_TIMEOUT = int(os.environ.get("MKTAUTO_CHANNEL_TIMEOUT", "10"))
# Double opt-in: sign-ups stay "waiting for confirmation" until the contact clicks the emailed link.
MKTAUTO_DOUBLE_OPT_IN = env_bool("MKTAUTO_DOUBLE_OPT_IN", False)
MKTAUTO_CONFIRMATION_MAX_AGE_DAYS = int(os.environ.get("MKTAUTO_CONFIRMATION_MAX_AGE_DAYS", "7"))

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"


# Email: files under var/mail by default; MKTAUTO_EMAIL_BACKEND selects any Django or anymail backend.
EMAIL_BACKEND = os.environ.get("MKTAUTO_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("MKTAUTO_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("MKTAUTO_DEFAULT_FROM_EMAIL", "Demo Shop <shop@example.com>")
EMAIL_HOST = os.environ.get("MKTAUTO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("MKTAUTO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("MKTAUTO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("MKTAUTO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("MKTAUTO_EMAIL_USE_TLS", False)
ANYMAIL = {
    "BREVO_API_KEY": os.environ.get("MKTAUTO_BREVO_API_KEY", ""),
    "WEBHOOK_SECRET": os.environ.get("MKTAUTO_ANYMAIL_WEBHOOK_SECRET", ""),
}


# django-q2: the ORM broker in the embedded default, Redis when MKTAUTO_REDIS_URL is set.
# retry must exceed timeout, and catch_up is off so an outage never replays a burst of ticks.
Q_CLUSTER = {
    "name": "mktauto",
    "workers": int(os.environ.get("MKTAUTO_Q_WORKERS", "2")),
    "timeout": int(os.environ.get("MKTAUTO_Q_TIMEOUT", "240")),
    "retry": int(os.environ.get("MKTAUTO_Q_RETRY", "300")),
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "label": _("Task queue"),
}
if os.environ.get("MKTAUTO_REDIS_URL"):
    Q_CLUSTER["redis"] = os.environ["MKTAUTO_REDIS_URL"]
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["contacts.api_keys.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    # Storefront pixel keys are public; see contacts/throttling.py.
    "DEFAULT_THROTTLE_RATES": {"pixel": os.environ.get("MKTAUTO_PIXEL_RATE", "120/min")},
}

# A storefront pixel posts events from the shop's own domain, so the events API accepts CORS
# requests from any origin. It authenticates with a key in a header and never with cookies, so
# no credentials cross origins; every other URL keeps the same-origin policy.
CORS_URLS_REGEX = r"^/api/events$"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = False

if os.environ.get("MKTAUTO_REDIS_URL"):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["MKTAUTO_REDIS_URL"]}}

IMPORT_EXPORT_SKIP_ADMIN_LOG = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("MKTAUTO_LOG_LEVEL", "WARNING")},
    "loggers": {
        "contacts": {"level": os.environ.get("MKTAUTO_LOG_LEVEL", "INFO")},
        "workflows": {"level": os.environ.get("MKTAUTO_LOG_LEVEL", "INFO")},
        "campaigns": {"level": os.environ.get("MKTAUTO_LOG_LEVEL", "INFO")},
    },
}
