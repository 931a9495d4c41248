"""FunnelStream's services: one package per process kind."""
