"""alertstream.v1: alertstream_pb2 (messages) and alertstream_pb2_grpc (the AlertService stub).

Both modules are generated from proto/alertstream/v1/alertstream.proto when the package is built (setup.py); they are
never committed.
"""
