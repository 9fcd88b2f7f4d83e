"""Doors, visitor passes, cloud broadcast and access history: the resident's doors page
(/m/doors), the building page's door panel and the large screen's broadcast panel."""

LABELS: dict[str, tuple[str, str]] = {
    # the resident app's tab and page
    "m.nav.doors": ("门禁", "Doors"),
    "dr.title": ("一键开门", "Open a door"),
    "dr.gate": ("小区大门", "Community gate"),
    "dr.entrance": ("单元门", "Building entrance"),
    "dr.open": ("开门", "Open"),
    "dr.sent": ("已发送，等待门禁应答…", "Sent; waiting for the door to answer…"),
    "dr.acked_ok": ("门已打开", "The door opened"),
    "dr.acked_fail": ("门禁未能开门", "The door could not open"),
    "dr.no_answer": ("门禁暂未应答", "No answer from the door yet"),
    "dr.none": ("没有可开的门", "No door to open"),
    # visitor passes
    "vp.title": ("访客通行证", "Visitor pass"),
    "vp.hours": ("有效时长（小时）", "Good for (hours)"),
    "vp.issue": ("生成通行码", "Issue a pass"),
    "vp.valid": ("有效期", "Valid"),
    "vp.to": ("至", "to"),
    "vp.code": ("通行码", "Pass code"),
    "vp.once": ("仅限小区大门使用一次", "Opens a community gate once"),
    "vp.recent": ("最近的通行证", "Recent passes"),
    "vp.used": ("已使用", "Used"),
    "vp.unused": ("未使用", "Not used"),
    "vp.expired": ("已过期", "Expired"),
    # access history
    "ah.title": ("通行记录", "Access history"),
    "ah.time": ("时间", "Time"),
    "ah.door": ("门", "Door"),
    "ah.method": ("方式", "Method"),
    "ah.direction": ("方向", "Direction"),
    "ah.who": ("人员", "Who"),
    "ah.result": ("结果", "Result"),
    "ah.none": ("暂无通行记录", "No passages yet"),
    "ah.in": ("进", "in"),
    "ah.out": ("出", "out"),
    "ah.granted": ("通过", "passed"),
    "ah.denied": ("拒绝", "refused"),
    "am.face": ("人脸", "face"),
    "am.card": ("刷卡", "card"),
    "am.nfc": ("NFC", "NFC"),
    "am.qr": ("二维码", "QR code"),
    "am.visitor_qr": ("访客码", "visitor pass"),
    "am.fingerprint": ("指纹", "fingerprint"),
    "am.password": ("密码", "password"),
    "am.bluetooth": ("蓝牙", "Bluetooth"),
    "am.remote": ("远程开门", "remote"),
    "am.intercom": ("可视对讲", "video intercom"),
    "am.voice": ("语音", "voice"),
    "am.super_sim": ("超级SIM卡", "super SIM"),
    "am.exit_button": ("出门按钮", "exit button"),
    # the building page's door panel
    "bd.doors": ("门禁", "Doors"),
    "bd.door": ("选择门禁", "Pick a door"),
    "bd.open_door": ("远程开门", "Open remotely"),
    # the large screen's broadcast panel
    "bc.title": ("云广播", "Cloud broadcast"),
    "bc.area": ("范围", "Area"),
    "bc.area.drawn": ("地图上圈选的区域", "The area drawn on the map"),
    "bc.area.building": ("楼栋", "A building"),
    "bc.area.grid": ("网格", "A grid"),
    "bc.area.speakers": ("指定音柱", "Picked speakers"),
    "bc.pick": ("选择…", "Pick…"),
    "bc.draw_hint": ("在地图上依次点击圈出区域（至少3点）", ("Tap the map to draw an area "
                     "(3 points or more)")),
    "bc.points": ("已圈选点数", "Points drawn"),
    "bc.clear": ("清除", "Clear"),
    "bc.preset": ("预设内容", "Preset"),
    "bc.text": ("广播内容", "Text"),
    "bc.send": ("发送广播", "Send"),
    "bc.acked": ("已应答", "acknowledged"),
    "bc.of": ("/", "of"),
    "bc.preset.fire_drill": ("消防演习", "Fire drill"),
    "bc.preset.typhoon": ("台风预警", "Typhoon warning"),
    "bc.preset.notice": ("社区通知", "Community notice"),
    "bc.preset.water_cut": ("停水通知", "Water cut"),
    # what the presets say (the operator may edit before sending)
    "bc.say.fire_drill": ("各位居民请注意，小区即将进行消防演习，请听从工作人员指挥，有序疏散。",
                          ("Attention residents: a fire drill is about to begin. Please follow "
                          "the staff's directions and leave calmly.")),
    "bc.say.typhoon": ("台风预警：请关好门窗，收好阳台物品，非必要不外出。",
                       ("Typhoon warning: close doors and windows, bring in balcony items and "
                       "stay indoors.")),
    "bc.say.notice": ("各位居民请注意，物业服务中心有重要通知，请查看社区公告。",
                      ("Attention residents: the property office has an important notice; "
                      "please read the community notices.")),
    "bc.say.water_cut": ("因管道维修，今日将临时停水，请提前储水。",
                         "Water will be cut today for pipe repairs; please store some water."),
}

#: The broadcast presets, in the order the panel lists them.
PRESETS: tuple[str, ...] = ("fire_drill", "typhoon", "notice", "water_cut")
