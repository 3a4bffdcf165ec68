import CZeroMQ

/// The libzmq version linked at run time, e.g. "4.3.4".
public var zmqVersion: String {
    var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
    zmq_version(&major, &minor, &patch)
    return "\(major).\(minor).\(patch)"
}
