import sys

import alertstream
from alertstream.v1.alertstream_pb2 import AlertState

target = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
readings = [{"sensor_id": "line-1", "values": {"temperature": t}, "seq": seq}
            for seq, t in enumerate([12, 8, 7, 11], start=1)]
for alert in alertstream.stream(target, readings):
    print(AlertState.Name(alert.state), alert.rule, alert.reading_seq, alert.message)
# ALERT_STATE_FIRING temp_too_low 2 temp too low
# ALERT_STATE_RESOLVED temp_too_low 4 resolved: temp too low
