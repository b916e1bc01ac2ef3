{#- The bpfunits formula: verified units in /etc/bpfunits.d (units.sls), the service reloaded
    when they or the kernel's chains differ (service.sls). Settings: defaults.yaml, pillar.example. #}
include:
  - bpfunits.units
  - bpfunits.service
