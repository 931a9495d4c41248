"""What every FunnelStream service shares: settings, event models, Kafka and database plumbing."""
