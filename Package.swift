// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "npfs",
    products: [
        .executable(name: "npfs", targets: ["npfs"]),
        .executable(name: "npfs-soak", targets: ["npfs-soak"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // libfuse3 (Debian: libfuse3-dev), seen through a shim that fixes FUSE_USE_VERSION.
        .systemLibrary(
            name: "CFuse3",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),
        // libpq (Debian: libpq-dev), PostgreSQL's client library: its calls are in
        // PipeCluster/Postgres/Connection.swift only.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        // npfs's rings for FUSE over io_uring, in C on liburing (Debian: liburing-dev),
        // behind a header of its own (liburing's io_uring.h clashes with the kernel's that
        // other modules see); used by PipeFuse/Ring only.
        .target(
            name: "CRing",
            linkerSettings: [.linkedLibrary("uring")]
        ),
        // Pipes, bytes and errno: no FUSE, no C.
        .target(
            name: "PipeCore",
            dependencies: [.product(name: "SystemPackage", package: "swift-system")],
            // Exclusive access to the buffer's and the pipes' state is checked at run time
            // in debug builds, which every test runs; a release build trusts what they
            // checked and saves about 800 instructions per 4 KiB block (./instructions.sh).
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // The only layer that imports CFuse3.
        .target(
            name: "PipeFuse",
            dependencies: ["CFuse3", "CLinux", "CRing", "PipeCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // The cluster executor: the same pipe machine, run in PostgreSQL transactions, so
        // that mounts on several hosts share pipes (-o cluster=).
        .target(
            name: "PipeCluster",
            dependencies: ["CLibPQ", "PipeCore"]
        ),
        // What the command line and the tests share: attribute access, spawning; its
        // system calls in one file.
        .target(
            name: "NpfsClient",
            dependencies: ["CLinux", "PipeCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // Linux headers beyond Glibc's module: xattr (the client library), malloc and CPU
        // affinity (the daemon), epoll (the tests).
        .systemLibrary(name: "CLinux"),
        .executableTarget(
            name: "npfs",
            dependencies: [
                "CLinux", "PipeCore", "PipeFuse", "PipeCluster", "NpfsClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The soak: many clients killed at random, then every byte checked (./soak.sh).
        .executableTarget(
            name: "npfs-soak",
            dependencies: [
                "CLinux", "NpfsClient", "PipeCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The clients ./bench.sh times against a kernel FIFO and npfs.
        .executableTarget(
            name: "npfs-bench",
            dependencies: ["NpfsClient", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // What the test targets share: child processes, and a PostgreSQL server of their own.
        .target(
            name: "NpfsTestSupport",
            dependencies: ["NpfsClient"],
            path: "Tests/Support"
        ),
        .testTarget(
            name: "PipeCoreTests",
            dependencies: ["PipeCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "PipeClusterTests",
            dependencies: ["PipeCluster", "PipeCore", "NpfsTestSupport"]
        ),
        .testTarget(
            name: "PipeFuseTests",
            dependencies: ["PipeFuse", "PipeCore"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["CLinux", "NpfsClient", "NpfsTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
