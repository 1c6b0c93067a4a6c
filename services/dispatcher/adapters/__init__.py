"""Platform adapters: plugins with a slug, a config model and one contract test suite.

Adding a platform is one module (a PlatformAdapter subclass) plus one entry here.
"""

import importlib

from services.dispatcher.adapters.base import PlatformAdapter

# slug -> "module:class". Platforms served by default are each class's default_platforms.
CATALOGUE: dict[str, str] = {
    "meta": "services.dispatcher.adapters.meta:MetaAdapter",
    "youtube": "services.dispatcher.adapters.youtube:YouTubeAdapter",
    "x": "services.dispatcher.adapters.x:XAdapter",
    "tiktok": "services.dispatcher.adapters.tiktok:TikTokAdapter",
    "telegram": "services.dispatcher.adapters.telegram:TelegramAdapter",
    "webhook": "services.dispatcher.adapters.webhook:WebhookAdapter",
    "email": "services.dispatcher.adapters.email:EmailAdapter",
}


def load(slug: str) -> type[PlatformAdapter]:
    """The adapter class registered under slug."""
    module, _, name = CATALOGUE[slug].partition(":")
    return getattr(importlib.import_module(module), name)
