// The term lists below are the ones the EPCIS 2.0 JSON-LD context
// (https://ref.gs1.org/standards/epcis/epcis-context.jsonld) defines; follow a new CBV release here.

package xmlbind

// bizStepVocab holds the standard bizStep values.
var bizStepVocab = newVocab("urn:epcglobal:cbv:bizstep:", "cbv:BizStep-", "https://ref.gs1.org/cbv/BizStep-",
	"accepting", "arriving", "assembling", "collecting", "commissioning", "consigning",
	"creating_class_instance", "cycle_counting", "decommissioning", "departing", "destroying",
	"disassembling", "dispensing", "encoding", "entering_exiting", "holding", "inspecting",
	"installing", "killing", "loading", "other", "packing", "picking", "receiving", "removing",
	"repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
	"sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing",
	"transporting", "unloading", "unpacking", "void_shipping",
)

// dispositionVocab holds the standard disposition and persistentDisposition values.
var dispositionVocab = newVocab("urn:epcglobal:cbv:disp:", "cbv:Disp-", "https://ref.gs1.org/cbv/Disp-",
	"active", "available", "completeness_inferred", "completeness_verified", "conformant",
	"container_closed", "container_open", "damaged", "destroyed", "dispensed", "disposed", "encoded",
	"expired", "in_progress", "in_transit", "inactive", "mismatch_class", "mismatch_instance",
	"mismatch_quantity", "needs_replacement", "no_pedigree_match", "non_conformant",
	"non_sellable_other", "partially_dispensed", "recalled", "reserved", "retail_sold", "returned",
	"sellable_accessible", "sellable_not_accessible", "stolen", "unavailable", "unknown",
)

// bizTransactionTypeVocab holds the standard bizTransaction type attribute values.
var bizTransactionTypeVocab = newVocab("urn:epcglobal:cbv:btt:", "cbv:BTT-", "https://ref.gs1.org/cbv/BTT-",
	"bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma", "testprd",
	"testres", "upevt",
)

// sourceDestTypeVocab holds the standard source and destination type attribute values.
var sourceDestTypeVocab = newVocab("urn:epcglobal:cbv:sdt:", "cbv:SDT-", "https://ref.gs1.org/cbv/SDT-",
	"location", "owning_party", "possessing_party",
)

// errorReasonVocab holds the standard errorDeclaration reason values.
var errorReasonVocab = newVocab("urn:epcglobal:cbv:er:", "cbv:ER-", "https://ref.gs1.org/cbv/ER-",
	"did_not_occur", "incorrect_data",
)

// measurementTypeVocab holds the standard sensorReport type attribute values (GS1 Web Vocabulary measurement types).
var measurementTypeVocab = newVocab("", "gs1:", "https://gs1.org/voc/",
	"AbsoluteHumidity", "AbsorbedDose", "AbsorbedDoseRate", "Acceleration", "Altitude",
	"AmountOfSubstance", "AmountOfSubstancePerUnitVolume", "Angle", "AngularAcceleration",
	"AngularMomentum", "AngularVelocity", "Area", "Capacitance", "Conductance", "Conductivity",
	"Count", "Density", "Dimensionless", "DoseEquivalent", "DoseEquivalentRate", "DynamicViscosity",
	"ElectricCharge", "ElectricCurrent", "ElectricCurrentDensity", "ElectricFieldStrength", "Energy",
	"Exposure", "Force", "Frequency", "Illuminance", "Inductance", "Irradiance", "KinematicViscosity",
	"Length", "LinearMomentum", "Luminance", "LuminousFlux", "LuminousIntensity", "MagneticFlux",
	"MagneticFluxDensity", "MagneticVectorPotential", "Mass", "MassConcentration", "MassFlowRate",
	"MassPerAreaTime", "MemoryCapacity", "MolalityOfSolute", "MolarEnergy", "MolarMass",
	"MolarVolume", "Power", "Pressure", "RadiantFlux", "RadiantIntensity", "Radioactivity",
	"RelativeHumidity", "Resistance", "Resistivity", "SolidAngle", "SpecificVolume", "Speed",
	"SurfaceDensity", "SurfaceTension", "Temperature", "Time", "Torque", "Voltage", "Volume",
	"VolumeFlowRate", "VolumeFraction", "VolumetricFlux", "Wavenumber",
)

// sensorAlertVocab holds the standard sensorReport exception attribute values.
var sensorAlertVocab = newVocab("", "gs1:", "https://gs1.org/voc/",
	"ALARM_CONDITION", "ERROR_CONDITION",
)

// componentVocab holds the standard sensorReport component attribute values.
var componentVocab = newVocab("", "cbv:Comp-", "https://ref.gs1.org/cbv/Comp-",
	"altitude", "axial_distance", "azimuth", "easting", "elevation_angle", "height", "latitude",
	"longitude", "northing", "polar_angle", "spherical_radius", "x", "y", "z",
)
