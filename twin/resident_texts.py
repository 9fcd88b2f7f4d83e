"""What the twin says to and about residents acting from their app (SOS, charging), as
system texts: keys and parameters (ids, never names), rendered per reader by
`twin.texts`. Merged into `twin.system_texts.SYSTEM_TEXTS`; the charging keys are also
written by migration 0024's trigger (``sys/charging-ended/<reason>``)."""

from __future__ import annotations

RESIDENT_TEXTS: dict[str, dict[str, str]] = {
    # a one-key SOS from the resident app: the alarm's and its work order's titles
    "sys/sos": {"zh-CN": "一键报警：{building_name} {unit_number}",
                "en": "SOS from the resident app: {building_name} {unit_number}"},
    "sys/sos-order": {"zh-CN": "一键报警出警：{building_name} {unit_number}",
                      "en": "Respond to an SOS: {building_name} {unit_number}"},
    # the end of a resident's charging session, by why it ended
    "sys/charging-ended/full": {
        "zh-CN": "{device_name} 已充满自停：本次充电 {kwh} 度，用时 {minutes} 分钟",
        "en": "{device_name}: the battery is full and charging stopped: {kwh} kWh "
              "in {minutes} min"},
    "sys/charging-ended/stopped": {
        "zh-CN": "{device_name} 已按您的要求停止充电：本次 {kwh} 度，用时 {minutes} 分钟",
        "en": "{device_name}: charging stopped as you asked: {kwh} kWh in {minutes} min"},
    "sys/charging-ended/cut_off": {
        "zh-CN": "{device_name} 已被系统断电：本次 {kwh} 度，用时 {minutes} 分钟",
        "en": "{device_name}: the twin cut the power off: {kwh} kWh in {minutes} min"},
    "sys/charging-refused": {
        "zh-CN": "{device_name} 未能开始充电：请确认车辆已插好",
        "en": "{device_name} did not start charging: check that the bike is plugged in"},
}
