"""WhatsApp: the provider clients (Cloud API, simulated) and the limits shared by workers."""

from app.config import Provider, Settings
from app.whatsapp.providers import CloudApiProvider, WhatsAppProvider
from app.whatsapp.simulated import SimulatedProvider


def build_provider(settings: Settings) -> WhatsAppProvider:
    """The provider the settings name: the Cloud API, or its simulated twin."""
    if settings.whatsapp_provider is Provider.CLOUD_API:
        return CloudApiProvider(settings)
    return SimulatedProvider(settings)
