"""Pure builders of desired state: functions of (spec, facts), no I/O."""
