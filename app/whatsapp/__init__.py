"""WhatsApp: the provider clients (Cloud API, simulated) and the limits shared by workers."""
