const { connect, stream } = require('./alertstream');

const client = connect(process.argv[2] ?? '127.0.0.1:50051');
const readings = [12, 8, 7, 11].map((t, i) => ({ sensor_id: 'line-1', values: { temperature: t }, seq: i + 1 }));
stream(client, readings, (alert) => console.log(alert.state, alert.rule, alert.reading_seq, alert.message))
  .finally(() => client.close());
// ALERT_STATE_FIRING temp_too_low 2 temp too low
// ALERT_STATE_RESOLVED temp_too_low 4 resolved: temp too low
