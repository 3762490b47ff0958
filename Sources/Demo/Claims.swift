/// A scene's claims, checked one by one: each that does not hold is printed as
/// FAILED, and the scene fails if any did not.
struct Claims {
    private(set) var held = true

    mutating func check(_ holds: Bool, _ what: String) {
        if !holds {
            print("  FAILED: \(what)")
            held = false
        }
    }
}
