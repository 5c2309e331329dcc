"""Model-card templates (installed as ``visnet_hf.hub_cards``)."""
