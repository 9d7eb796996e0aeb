/// What a cluster mount is told by its options (`cluster=`, `cluster_space=`, `host=`,
/// `cluster_schema=`, `cluster_timeout=`, `cluster_passfile=`).
package struct ClusterSettings: Sendable, Equatable {
    package var target: ClusterTarget
    /// Mounts of the same server, database and space share pipe names.
    package var space: String
    /// This mount's name in status and client lists.
    package var hostName: String
    package var schema: String
    /// How long an operation that needs PostgreSQL may wait for it, in seconds.
    package var timeout: Double

    package init(target: ClusterTarget, space: String = "default", hostName: String, schema: String = "npfs", timeout: Double = 5) {
        self.target = target
        self.space = space
        self.hostName = hostName
        self.schema = schema
        self.timeout = timeout
    }
}
