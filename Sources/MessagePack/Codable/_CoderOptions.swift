import Synchronization

/// A coder that a `MessagePackEncoder` or `MessagePackDecoder` keeps between calls.
protocol _ReusableCoder<Options>: AnyObject {
    associatedtype Options: Sendable
    init(options: Options)
    /// The options the coder works with, and which version of them that is.
    var options: Options { get set }
    var optionsVersion: Int { get set }
}

/// The options of a `MessagePackEncoder` or `MessagePackDecoder`, and one coder kept
/// from the last call with its buffers and what it learned of types, so that a
/// steady stream of calls allocates only its results.
///
/// A call takes the spare coder and gives it back with one atomic exchange each, and
/// compares the options' version with an atomic load: no lock on the way of a call
/// unless the options changed. (A lock taken twice per call cost a small value's
/// encoding about a tenth of its time.) Two calls at once: the second makes a coder
/// of its own, and only one is kept.
///
/// Sendable: the spare coder is handed from one call to the next only through
/// `_Spare`'s atomic exchange (one user at a time).
struct _CoderOptions<Coder: _ReusableCoder>: ~Copyable, @unchecked Sendable {
    private let options: Mutex<Coder.Options>
    /// Counts changes of the options; a spare coder whose copy is older gets a new one.
    private let version = Atomic<Int>(0)
    private let spare = _Spare<Coder>()

    init(_ options: Coder.Options) {
        self.options = Mutex(options)
    }

    /// One option, read under the lock.
    func read<R>(_ body: (Coder.Options) -> R) -> R {
        options.withLock { body($0) }
    }

    /// Changes the options; calls that start after this see the change.
    func change(_ body: (inout Coder.Options) -> Void) {
        options.withLock { options in
            body(&options)
            version.add(1, ordering: .releasing)
        }
    }

    /// The spare coder (or a new one), with the current options.
    func take() -> Coder {
        let coder: Coder
        if let spare = spare.take() {
            coder = spare
            if coder.optionsVersion == version.load(ordering: .acquiring) { return coder }
            (coder.options, coder.optionsVersion) = current()
        } else {
            let (options, version) = current()
            coder = Coder(options: options)
            coder.optionsVersion = version
        }
        return coder
    }

    /// The options and their version, read together.
    private func current() -> (Coder.Options, Int) {
        options.withLock { ($0, version.load(ordering: .acquiring)) }
    }

    /// Keeps `coder` for the next call, unless another is kept already.
    func giveBack(_ coder: consuming Coder) {
        spare.giveBack(coder)
    }
}
